"""Server-generated keys, returned once as a password-protected PKCS #12 file.

The key is generated in memory with ``cryptography`` and never written
anywhere: not to the key store, not to the database, not to a temporary file.
The PKCS #12 file protects it with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and
a SHA-256 MAC, which OpenSSL 1.1.1+, Windows 10+, macOS, NSS and Java read.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from ca.profiles import KeyType
from ca.service_errors import PKCS12PasswordInvalid

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
# PBKDF2 iterations for the key bag, the certificate bag and the MAC.
KDF_ROUNDS = 200_000


def generate_private_key(key_type: KeyType) -> PrivateKey:
    """A new private key of ``key_type``, in memory only."""
    if key_type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.value.split("-")[1]))


def check_password(password: str | None) -> str:
    """Return ``password`` if it may protect a PKCS #12 file.

    Raises:
        PKCS12PasswordInvalid: missing, shorter than 12 characters, longer
            than 1024, or containing control characters.
    """
    if not password:
        raise PKCS12PasswordInvalid("a server-generated key needs pkcs12_password to protect it",
                                    detail_zh="服务端生成密钥需要提供 pkcs12_password 口令", rule="required")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PKCS12PasswordInvalid(f"pkcs12_password must have at least {MIN_PASSWORD_LENGTH} characters",
                                    detail_zh=f"pkcs12_password 至少需要 {MIN_PASSWORD_LENGTH} 个字符",
                                    rule="min_length")
    if len(password) > MAX_PASSWORD_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise PKCS12PasswordInvalid("pkcs12_password is too long or contains control characters",
                                    detail_zh="pkcs12_password 过长或含有控制字符", rule="characters")
    return password


def export_pkcs12(
    key: PrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    password: str,
    *,
    friendly_name: str,
) -> bytes:
    """The key, its certificate and the CA chain as a PKCS #12 file encrypted under ``password``.

    Raises:
        PKCS12PasswordInvalid: see :func:`check_password`.
    """
    password = check_password(password)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode("utf-8"))
    )
    return pkcs12.serialize_key_and_certificates(
        friendly_name[:64].encode("utf-8"), key, certificate, list(chain) or None, encryption
    )

"""Hash and signature algorithms known to the timestamp authority.

One table says which message-imprint hashes exist, which are refused outright
(SHA-1, MD5 and friends are collision-broken: a token over them proves nothing),
and how each key type signs and verifies CMS signed attributes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from timestamp.errors import InvalidSignature, TSAConfigurationError, UnsupportedAlgorithm


@dataclass(frozen=True)
class HashAlgorithm:
    """A message-imprint hash: asn1crypto name, dotted OID and digest size in bytes."""

    name: str
    oid: str
    digest_size: int

    def digest(self, data: bytes) -> bytes:
        """Return the digest of ``data`` with this algorithm."""
        return hashlib.new(self.name, data).digest()

    def cryptography_hash(self) -> hashes.HashAlgorithm:
        """Return the matching ``cryptography`` hash object."""
        return _CRYPTOGRAPHY_HASHES[self.name]()


HASH_ALGORITHMS: dict[str, HashAlgorithm] = {
    h.name: h
    for h in (
        HashAlgorithm("sha224", "2.16.840.1.101.3.4.2.4", 28),
        HashAlgorithm("sha256", "2.16.840.1.101.3.4.2.1", 32),
        HashAlgorithm("sha384", "2.16.840.1.101.3.4.2.2", 48),
        HashAlgorithm("sha512", "2.16.840.1.101.3.4.2.3", 64),
        HashAlgorithm("sha3_256", "2.16.840.1.101.3.4.2.8", 32),
        HashAlgorithm("sha3_384", "2.16.840.1.101.3.4.2.9", 48),
        HashAlgorithm("sha3_512", "2.16.840.1.101.3.4.2.10", 64),
    )
}
HASH_ALGORITHMS_BY_OID: dict[str, HashAlgorithm] = {h.oid: h for h in HASH_ALGORITHMS.values()}
# "sha-256", "SHA256", "sha3-256" and "sha3_256" all name the same algorithm.
_HASHES_BY_COMPACT_NAME: dict[str, HashAlgorithm] = {h.name.replace("_", ""): h for h in HASH_ALGORITHMS.values()}

# Broken hashes: never accepted in a request, a configuration or a token.
REFUSED_HASH_OIDS: dict[str, str] = {
    "1.3.14.3.2.26": "sha1",
    "1.2.840.113549.2.5": "md5",
    "1.2.840.113549.2.2": "md2",
    "1.2.840.113549.2.4": "md4",
}

DEFAULT_HASH_ALGORITHMS: frozenset[str] = frozenset({"sha256", "sha384", "sha512"})

_CRYPTOGRAPHY_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}


def hash_algorithm(name_or_oid: str) -> HashAlgorithm:
    """Look up a hash algorithm by asn1crypto name (``sha256``, ``sha-256``) or dotted OID.

    Raises :class:`UnsupportedAlgorithm` for unknown names and for refused ones
    (SHA-1, MD5).
    """
    key = name_or_oid.lower().replace("-", "").replace("_", "")
    found = _HASHES_BY_COMPACT_NAME.get(key) or HASH_ALGORITHMS_BY_OID.get(name_or_oid)
    if found is None:
        refused = REFUSED_HASH_OIDS.get(name_or_oid) or (key if key in REFUSED_HASH_OIDS.values() else None)
        if refused:
            raise UnsupportedAlgorithm(
                f"hash algorithm {refused} is refused", detail_zh=f"拒绝使用哈希算法 {refused}", algorithm=refused
            )
        raise UnsupportedAlgorithm(
            f"unknown hash algorithm {name_or_oid}", detail_zh=f"未知的哈希算法 {name_or_oid}", algorithm=name_or_oid
        )
    return found


# ---------------------------------------------------------------------------
# Signing with the TSA key.

Signer = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

_EC_DIGESTS = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}


@dataclass(frozen=True)
class SignatureScheme:
    """How the TSA key signs the DER of its signed attributes, and how to check it.

    ``digest`` is the CMS digest algorithm (message-digest attribute and
    SignerInfo.digestAlgorithm); ``signature_algorithm`` is the asn1crypto
    value of SignerInfo.signatureAlgorithm; ``verify(signature, data)`` checks a
    signature with the TSA certificate's public key and raises
    :class:`InvalidSignature` when it does not verify.
    """

    digest: HashAlgorithm
    signature_algorithm: dict[str, Any]
    sign: Callable[[bytes], bytes]
    verify: Callable[[bytes, bytes], None]


def signature_scheme(signer: Signer, certificate_key: PublicKey, digest_name: str | None = None) -> SignatureScheme:
    """Choose the CMS signature scheme for ``signer`` and its certified public key.

    ECDSA keys sign with the hash matching their curve (P-256/SHA-256,
    P-384/SHA-384, P-521/SHA-512), RSA keys with PKCS#1 v1.5 and SHA-256, Ed25519
    with SHA-512 as RFC 8419 requires.  ``digest_name`` overrides the hash for EC
    and RSA keys.  Only ``sign()`` is ever called on the signer, so key store
    adapters work.

    Raises :class:`TSAConfigurationError` for other key types, a refused hash, or
    a certificate key of another type than the signer.
    """
    try:
        if isinstance(signer, ec.EllipticCurvePrivateKey) and isinstance(certificate_key, ec.EllipticCurvePublicKey):
            ec_key = certificate_key
            digest = hash_algorithm(digest_name or _EC_DIGESTS.get(ec_key.curve.name, "sha256"))
            ecdsa = ec.ECDSA(digest.cryptography_hash())

            def verify_ecdsa(signature: bytes, data: bytes) -> None:
                ec_key.verify(signature, data, ecdsa)

            return SignatureScheme(
                digest,
                {"algorithm": f"{digest.name}_ecdsa"},
                lambda data: signer.sign(data, ecdsa),
                _wrap(verify_ecdsa),
            )
        if isinstance(signer, rsa.RSAPrivateKey) and isinstance(certificate_key, rsa.RSAPublicKey):
            rsa_key = certificate_key
            digest = hash_algorithm(digest_name or "sha256")
            pkcs1 = padding.PKCS1v15()
            algorithm = digest.cryptography_hash()

            def verify_rsa(signature: bytes, data: bytes) -> None:
                rsa_key.verify(signature, data, pkcs1, algorithm)

            return SignatureScheme(
                digest,
                {"algorithm": f"{digest.name}_rsa"},
                lambda data: signer.sign(data, pkcs1, algorithm),
                _wrap(verify_rsa),
            )
        if isinstance(signer, ed25519.Ed25519PrivateKey) and isinstance(certificate_key, ed25519.Ed25519PublicKey):
            if digest_name not in (None, "sha512"):
                raise TSAConfigurationError("Ed25519 signatures use SHA-512 (RFC 8419)")
            return SignatureScheme(
                HASH_ALGORITHMS["sha512"], {"algorithm": "ed25519"}, signer.sign, _wrap(certificate_key.verify)
            )
    except UnsupportedAlgorithm as e:
        raise TSAConfigurationError(f"TSA signature digest: {e.detail}", detail_zh=e.detail_zh) from e
    raise TSAConfigurationError(
        f"unsupported TSA key type {type(signer).__name__} for a {type(certificate_key).__name__} certificate",
        detail_zh="不支持的时间戳服务密钥类型，或密钥与证书类型不符",
    )


def _wrap(verify: Callable[[bytes, bytes], None]) -> Callable[[bytes, bytes], None]:
    """Turn cryptography's InvalidSignature into ours."""

    def checked(signature: bytes, data: bytes) -> None:
        try:
            verify(signature, data)
        except CryptographyInvalidSignature as e:
            raise InvalidSignature("the timestamp signature does not verify", detail_zh="时间戳签名验证失败") from e

    return checked


# ---------------------------------------------------------------------------
# Verifying a SignerInfo produced by any TSA.

_RSA_PKCS1_OIDS = {
    "1.2.840.113549.1.1.1": None,  # rsaEncryption: hash from SignerInfo.digestAlgorithm
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
_ECDSA_OIDS = {
    "1.2.840.10045.2.1": None,  # id-ecPublicKey: hash from SignerInfo.digestAlgorithm
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
    "2.16.840.1.101.3.4.3.10": "sha3_256",
    "2.16.840.1.101.3.4.3.11": "sha3_384",
    "2.16.840.1.101.3.4.3.12": "sha3_512",
}
_RSA_PSS_OID = "1.2.840.113549.1.1.10"
_ED25519_OID = "1.3.101.112"
_ED448_OID = "1.3.101.113"


def verify_cms_signature(
    public_key: object,
    signature_algorithm: Any,
    digest: HashAlgorithm,
    signature: bytes,
    signed_data: bytes,
) -> None:
    """Verify ``signature`` over ``signed_data`` (the DER SET of signed attributes).

    ``signature_algorithm`` is the asn1crypto ``SignedDigestAlgorithm`` of the
    SignerInfo and ``digest`` its digest algorithm.  Raises
    :class:`InvalidSignature` when the signature does not verify or does not fit
    the key, and :class:`UnsupportedAlgorithm` for algorithms this verifier does
    not accept (anything based on SHA-1 or MD5, DSA).
    """
    oid = signature_algorithm["algorithm"].dotted
    try:
        if oid in _RSA_PKCS1_OIDS or oid == _RSA_PSS_OID:
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise InvalidSignature("the signature algorithm does not fit the signer key")
            if oid == _RSA_PSS_OID:
                params = signature_algorithm["parameters"]
                pss_hash = hash_algorithm(params["hash_algorithm"]["algorithm"].dotted)
                mgf_hash = hash_algorithm(params["mask_gen_algorithm"]["parameters"]["algorithm"].dotted)
                pss = padding.PSS(padding.MGF1(mgf_hash.cryptography_hash()), params["salt_length"].native)
                public_key.verify(signature, signed_data, pss, pss_hash.cryptography_hash())
                return
            name = _RSA_PKCS1_OIDS[oid]
            algorithm = hash_algorithm(name).cryptography_hash() if name else digest.cryptography_hash()
            public_key.verify(signature, signed_data, padding.PKCS1v15(), algorithm)
            return
        if oid in _ECDSA_OIDS:
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise InvalidSignature("the signature algorithm does not fit the signer key")
            name = _ECDSA_OIDS[oid]
            algorithm = hash_algorithm(name).cryptography_hash() if name else digest.cryptography_hash()
            public_key.verify(signature, signed_data, ec.ECDSA(algorithm))
            return
        if oid == _ED25519_OID and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, signed_data)
            return
        if oid == _ED448_OID and isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(signature, signed_data)
            return
    except CryptographyInvalidSignature as e:
        raise InvalidSignature("the timestamp signature does not verify", detail_zh="时间戳签名验证失败") from e
    except (ValueError, TypeError, KeyError) as e:
        raise InvalidSignature("the timestamp signature parameters are invalid", detail_zh="时间戳签名参数无效") from e
    if oid in (_ED25519_OID, _ED448_OID):
        raise InvalidSignature("the signature algorithm does not fit the signer key")
    raise UnsupportedAlgorithm(
        f"unsupported signature algorithm {oid}", detail_zh=f"不支持的签名算法 {oid}", algorithm=oid
    )

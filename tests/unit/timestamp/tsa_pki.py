"""A small test PKI for the timestamp authority: root CA -> intermediate CA -> TSA.

Built with cryptography and cached per key type, so every test module of the
unit, integration and interop suites shares the same keys within a session.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from timestamp.policy import Accuracy, TSAPolicy
from timestamp.tsa import TSAService

POLICY = "1.3.6.1.4.1.99999.1.1"
OTHER_POLICY = "1.3.6.1.4.1.99999.1.2"
UNKNOWN_POLICY = "1.3.6.1.4.1.99999.1.9"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def generate_key(key_type: str) -> PrivateKey:
    """Return a new key: ``ec-p256``, ``ec-p384``, ``rsa`` (2048 bits) or ``ed25519``."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(key_type)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hengxin Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _sign_algorithm(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def issue_ca(
    key: PrivateKey, name: str, issuer_key: PrivateKey | None = None, issuer: x509.Certificate | None = None
) -> x509.Certificate:
    """Issue a CA certificate (self-signed when no issuer is given)."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer.subject if issuer else _name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signing_key = issuer_key or key
    return builder.sign(signing_key, _sign_algorithm(signing_key))


def issue_tsa_certificate(
    key: PrivateKey,
    issuer_key: PrivateKey,
    issuer: x509.Certificate,
    *,
    eku: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.TIME_STAMPING,),
    eku_critical: bool = True,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    name: str = "Hengxin Test TSA",
) -> x509.Certificate:
    """Issue a TSA end-entity certificate: EKU timeStamping (critical), KU digitalSignature (critical)."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=eku_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, _sign_algorithm(issuer_key))


@dataclass(frozen=True)
class PKIFiles:
    """PEM files for openssl.

    ``chain`` holds the intermediate CA (what a token with certificates needs
    besides the root); ``bundle`` the TSA certificate and the intermediate (for
    tokens issued without certReq).
    """

    root: Path
    chain: Path
    bundle: Path
    tsa_certificate: Path


@dataclass(frozen=True)
class TSAPKI:
    """Root CA, intermediate CA and a TSA certificate with its key."""

    root_key: PrivateKey
    root: x509.Certificate
    intermediate_key: PrivateKey
    intermediate: x509.Certificate
    tsa_key: PrivateKey
    tsa_certificate: x509.Certificate

    def write(self, directory: Path) -> PKIFiles:
        """Write the certificates as PEM files into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)

        def pem(*certificates: x509.Certificate) -> bytes:
            return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)

        files = PKIFiles(
            directory / "root.pem", directory / "chain.pem", directory / "bundle.pem", directory / "tsa.pem"
        )
        files.root.write_bytes(pem(self.root))
        files.chain.write_bytes(pem(self.intermediate))
        files.bundle.write_bytes(pem(self.tsa_certificate, self.intermediate))
        files.tsa_certificate.write_bytes(pem(self.tsa_certificate))
        return files

    def service(self, policy: TSAPolicy | None = None, **kwargs: object) -> TSAService:
        """Return a TSA signing with this PKI's TSA key and sending the intermediate as chain."""
        return TSAService(
            self.tsa_key,
            self.tsa_certificate,
            policy or default_policy(),
            chain=[self.intermediate],
            **kwargs,  # type: ignore[arg-type]
        )


def default_policy(**kwargs: object) -> TSAPolicy:
    """The test TSA policy: POLICY by default, OTHER_POLICY also accepted, accuracy 1 s."""
    values: dict[str, object] = {
        "default_policy": POLICY,
        "accepted_policies": frozenset({OTHER_POLICY}),
        "accuracy": Accuracy(seconds=1),
    }
    values.update(kwargs)
    return TSAPolicy(**values)  # type: ignore[arg-type]


@functools.cache
def build_tsa_pki(key_type: str = "ec-p256", ca_key_type: str = "ec-p256") -> TSAPKI:
    """Return the (cached) test PKI whose TSA key is of ``key_type``."""
    root_key = generate_key(ca_key_type)
    root = issue_ca(root_key, "Hengxin Test Root CA")
    intermediate_key = generate_key(ca_key_type)
    intermediate = issue_ca(intermediate_key, "Hengxin Test TSA CA", root_key, root)
    tsa_key = generate_key(key_type)
    tsa_certificate = issue_tsa_certificate(tsa_key, intermediate_key, intermediate)
    return TSAPKI(root_key, root, intermediate_key, intermediate, tsa_key, tsa_certificate)

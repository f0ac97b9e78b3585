"""Small helpers shared by the certificate, CRL and OCSP builders.

Nothing here holds state; everything is a function of its arguments.
"""

from __future__ import annotations

import base64
import datetime
import hashlib

from asn1crypto import keys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from ca.errors import CAError, IssuerInvalid

UTC = datetime.UTC


def require_utc(value: datetime.datetime, name: str) -> datetime.datetime:
    """Return ``value`` in UTC with whole seconds.

    X.509 and OCSP times have a resolution of one second, so microseconds are
    dropped here rather than silently by the encoder.

    Raises:
        CAError: ``value`` is not a timezone-aware ``datetime`` (a caller bug).
    """
    if not isinstance(value, datetime.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise CAError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC).replace(microsecond=0)


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.HashAlgorithm | None:
    """The hash used with an issuer key: P-256 and RSA SHA-256, P-384 SHA-384, P-521 SHA-512, Ed25519 none.

    Only ``isinstance`` and ``curve`` are used, so key-store keys (subclasses of
    the ``cryptography`` key classes that sign remotely) work.

    Raises:
        IssuerInvalid: the key is of a type the CA cannot sign with.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curve = key.curve
        if isinstance(curve, ec.SECP256R1):
            return hashes.SHA256()
        if isinstance(curve, ec.SECP384R1):
            return hashes.SHA384()
        if isinstance(curve, ec.SECP521R1):
            return hashes.SHA512()
        raise IssuerInvalid(f"issuer key on curve {curve.name} is not supported")
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    raise IssuerInvalid(f"issuer key type {type(key).__name__} is not supported")


def subject_public_key_bits(public_key: CertificatePublicKeyTypes) -> bytes:
    """The contents of the ``subjectPublicKey`` BIT STRING of a key (no tag, length or unused-bits octet).

    These are the bytes hashed for key identifiers (RFC 5280 section 4.2.1.2,
    RFC 7093) and for the OCSP ``issuerKeyHash`` (RFC 6960 section 4.1.1).
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # Other key types are refused before a certificate is built; fall back to
    # parsing the SubjectPublicKeyInfo so foreign issuers can still be hashed.
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bytes(keys.PublicKeyInfo.load(spki)["public_key"].contents[1:])


def key_identifier(public_key: CertificatePublicKeyTypes) -> bytes:
    """The key identifier Hengxin puts in SKI and AKI: RFC 7093 section 2 method 1.

    The leftmost 160 bits of the SHA-256 hash of the subjectPublicKey bits: as
    long as the RFC 5280 SHA-1 identifier, without using SHA-1.
    """
    return hashlib.sha256(subject_public_key_bits(public_key)).digest()[:20]


def certificate_pem(der: bytes) -> bytes:
    """PEM of a DER certificate, byte for byte what ``cryptography`` writes (64-character lines).

    Encoding needs no parsing: the issuance path returns the certificate and its chain as PEM for every
    request, and parsing each certificate only to print it again would be wasted work.
    """
    text = base64.b64encode(der)
    lines = b"\n".join(text[i:i + 64] for i in range(0, len(text), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"

"""Offline roots and CA key lifecycle: pure helpers and their errors.

A root kept off the network signs a sub-CA's CSR during a key ceremony; the
server then installs the certificate (:func:`check_imported_certificate`) and,
later, the root's CRLs (:func:`check_imported_crl`).  These functions are pure:
they take certificates, keys and a time and raise on anything wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ca.errors import CAError
from core.errors import Category


class ImportRefused(CAError):
    """An imported certificate or CRL does not fit: wrong key, broken chain, not newer, unparsable.

    The ``rule`` member names the check that failed (``key_mismatch``, ``not_a_ca``,
    ``chain``, ``validity``, ``unknown_issuer``, ``crl_signature``, ``crl_not_newer``, ``format``).
    """

    code = "ca.import_refused"
    category = Category.INVALID
    title_en = "Imported certificate or CRL refused"
    title_zh = "导入的证书或 CRL 被拒绝"

    def __init__(self, detail: str, *, rule: str, detail_zh: str | None = None, **extra: object) -> None:
        super().__init__(detail, detail_zh=detail_zh, rule=rule, **extra)


class RolloverRefused(CAError):
    """A CA key rollover cannot be done (for example the CA is revoked, or kept offline)."""

    code = "ca.rollover_refused"
    category = Category.CONFLICT
    title_en = "CA key rollover refused"
    title_zh = "CA 密钥更替被拒绝"


def load_certificates_pem_or_der(data: bytes) -> list[x509.Certificate]:
    """Every certificate in ``data`` (PEM, one or more; or one DER); raises ImportRefused(rule=format)."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ImportRefused("not an X.509 certificate (PEM or DER)", rule="format",
                            detail_zh="不是 X.509 证书") from None


def load_crl_pem_or_der(data: bytes) -> x509.CertificateRevocationList:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise ImportRefused("not an X.509 CRL (PEM or DER)", rule="format", detail_zh="不是 X.509 CRL") from None


def build_ca_csr(subject: x509.Name, private_key: Any) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for a CA key (``private_key`` is a key store adapter), basicConstraints cA=true."""
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, algorithm)
    )


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_imported_certificate(
    certificate: x509.Certificate,
    public_key: Any,
    candidates: Sequence[x509.Certificate],
    now: dt.datetime,
) -> list[x509.Certificate]:
    """Check a CA certificate signed elsewhere; return its chain above it, ending at a self-signed root.

    The certificate must certify ``public_key``, be a CA certificate valid at
    ``now``, and chain through ``candidates`` (intermediates and the root) to a
    self-signed root among them.

    Raises:
        ImportRefused: with rule ``key_mismatch``, ``not_a_ca``, ``validity`` or ``chain``.
    """
    if _spki(certificate.public_key()) != _spki(public_key):
        raise ImportRefused("the certificate does not certify this CA's key", rule="key_mismatch",
                            detail_zh="证书中的公钥与该 CA 的密钥不符")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ImportRefused("the certificate is not a CA certificate (basicConstraints cA)", rule="not_a_ca",
                            detail_zh="不是 CA 证书")
    if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
        raise ImportRefused("the certificate is not valid now", rule="validity", detail_zh="证书不在有效期内")
    chain: list[x509.Certificate] = []
    current = certificate
    for _ in range(len(candidates) + 1):
        if current is not certificate and _issued_by(current, current):
            return chain
        issuer = next((c for c in candidates if c.subject == current.issuer and _issued_by(current, c)), None)
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    raise ImportRefused("the certificate does not chain to the given root", rule="chain",
                        detail_zh="证书无法链接到给定的根证书")


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        raise ImportRefused("the CRL has no CRL number", rule="format", detail_zh="CRL 缺少编号") from None

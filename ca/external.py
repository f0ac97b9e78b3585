"""Record a certificate that one of our CAs' keys signed outside this database.

A disaster-recovery drill restores the CA keys into a sandbox, and the sandbox
issues a short-lived probe certificate with them.  That certificate is
genuinely ours — it chains to our root — so production must know about it:
it is recorded here as issued and, in the same transaction, revoked (reason
cessationOfOperation by default), so it appears in the next CRL and OCSP
answers "revoked" for it.
"""

from __future__ import annotations

import dataclasses
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca.errors import CAError
from ca.models import CertificateAuthorityRow, CertificateRow
from core.audit import AuditLog
from core.clock import Clock
from core.errors import Category


class ExternalCertificateInvalid(CAError):
    code = "ca.external_certificate_invalid"
    category = Category.INVALID
    title_en = "The certificate was not issued by this CA"
    title_zh = "该证书并非由此 CA 签发"


@dataclasses.dataclass(frozen=True)
class RecordedCertificate:
    certificate_id: int
    ca: str
    serial: str
    fingerprint_sha256: str
    status: str
    reason: str


def record_revoked_external(
    session: Session,
    audit: AuditLog,
    clock: Clock,
    certificate: x509.Certificate,
    ca_name: str,
    *,
    profile: str,
    owner: str,
    actor: str,
    reason: str = "cessationOfOperation",
    note: str = "",
) -> RecordedCertificate:
    """Insert ``certificate`` as issued by ``ca_name`` and revoke it, with audit records, in ``session``.

    Raises ExternalCertificateInvalid unless the CA's current key signed it, or when the serial is
    already known for that CA (nothing is written then).
    """
    ca = session.execute(
        select(CertificateAuthorityRow).where(CertificateAuthorityRow.name == ca_name)
    ).scalar_one_or_none()
    if ca is None:
        raise ExternalCertificateInvalid(f"no CA named {ca_name!r}")
    issuer = x509.load_der_x509_certificate(ca.certificate_der)
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise ExternalCertificateInvalid(f"the certificate was not signed by CA {ca_name!r}") from e
    der = certificate.public_bytes(serialization.Encoding.DER)
    fingerprint = hashlib.sha256(der).hexdigest()
    now = clock()
    row = CertificateRow(
        ca_id=ca.id,
        serial=certificate.serial_number,
        status="revoked",
        profile=profile,
        subject=certificate.subject.rfc4514_string(),
        owner=owner,
        key_id=None,
        key_mode="csr",
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        der=der,
        fingerprint_sha256=fingerprint,
        requested_by=actor,
        created_at=now,
        revoked_at=now,
        revocation_reason=reason,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise ExternalCertificateInvalid(f"CA {ca_name!r} already has a certificate with this serial") from None
    session.execute(
        update(CertificateAuthorityRow)
        .where(CertificateAuthorityRow.id == ca.id)
        .values(crl_dirty_since=now, revocation_version=CertificateAuthorityRow.revocation_version + 1)
        .execution_options(synchronize_session=False)
    )
    serial = format(certificate.serial_number, "x")
    target = f"certificate:{ca_name}:{serial}"
    details = {"profile": profile, "owner": owner, "fingerprint_sha256": fingerprint, "note": note}
    audit.append(session, actor=actor, action="certificate.record_external", target=target, details=details)
    audit.append(session, actor=actor, action="certificate.revoke", target=target,
                 details={"reason": reason, "note": note})
    return RecordedCertificate(row.id, ca_name, serial, fingerprint, "revoked", reason)

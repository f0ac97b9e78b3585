"""CA tables: authorities, certificates (serials reserved before signing), CRLs.

These rows stay in the store layer (``ca/store.py`` turns them into frozen
values); routes and the CLI never see them.

Certificate rows go through ``reserved`` (the serial number is taken, nothing
is signed yet) to ``issued`` (the signed DER is stored) and then possibly to
``revoked`` or ``hold`` (and back from ``hold`` to ``issued``).  A row whose
signing failed becomes ``failed``; a row left ``reserved`` by a crash stays
so, and is reported ``unknown`` by OCSP.

A CA's own certificate is a row of ``ca_certificates`` under its parent (a
root's under itself), so revoking a sub-CA is an ordinary revocation that
lands in the parent's CRL.  ``certificate_id`` and ``ocsp_certificate_id``
point at those rows; they are plain integers (not foreign keys) so that the
two tables do not depend on each other.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store import Base, HexSerial, UTCDateTime

# Certificate statuses.
RESERVED = "reserved"
ISSUED = "issued"
REVOKED = "revoked"
HOLD = "hold"
FAILED = "failed"

# Authority statuses.
CA_PENDING = "pending"
CA_ACTIVE = "active"
CA_REVOKED = "revoked"
# A root whose key is kept off the network: its certificate and imported CRLs only, no key here.
CA_OFFLINE = "offline"


class CertificateAuthorityRow(Base):
    __tablename__ = "ca_authorities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("ca_authorities.id"), nullable=True)
    key_id: Mapped[str] = mapped_column(String(200), nullable=False)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # pending (name and serial reserved, not yet signed) | active | revoked
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=CA_ACTIVE)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    certificate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The OCSP responder certificate this CA delegates to (renewed automatically).
    ocsp_key_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ocsp_certificate_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    ocsp_certificate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crl_number: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # last number used
    # Set by the first revocation (or hold, or release) since the last CRL; cleared by the publisher.
    crl_dirty_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Incremented by every revocation change; the publisher clears crl_dirty_since only if it is unchanged.
    revocation_version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Set by a key rollover: new certificates are issued by that CA (the successor, same subject, new key);
    # this one stays active and keeps signing CRLs and OCSP answers for what it issued.
    superseded_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CertificateRow(Base):
    __tablename__ = "ca_certificates"
    __table_args__ = (UniqueConstraint("ca_id", "serial", name="uq_ca_certificates_ca_serial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_authorities.id"), nullable=False)
    serial: Mapped[int] = mapped_column(HexSerial, nullable=False)
    # reserved -> issued -> revoked | hold;  reserved rows whose signing failed become "failed".
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    profile: Mapped[str] = mapped_column(String(100), nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)  # RFC 4514
    # How the key was made: csr (the requester holds it), server (generated in memory, returned once
    # as PKCS#12), custodial (held in the key store for owner), ca / ocsp (held in the key store for the CA).
    key_mode: Mapped[str] = mapped_column(String(20), nullable=False, default="csr")
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)  # e.g. "user:zhangwei"
    key_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # keys held in the key store only
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    fingerprint_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    requested_by: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)  # RFC 5280 name
    invalidity_date: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    renewal_of: Mapped[int | None] = mapped_column(ForeignKey("ca_certificates.id"), nullable=True)


class CRLRow(Base):
    __tablename__ = "ca_crls"
    __table_args__ = (UniqueConstraint("ca_id", "crl_number", name="uq_ca_crls_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_authorities.id"), nullable=False)
    crl_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    this_update: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    next_update: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    entries: Mapped[int] = mapped_column(Integer, nullable=False)
    der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


Index("ix_ca_certificates_revoked", CertificateRow.ca_id, CertificateRow.status)
Index("ix_ca_certificates_serial", CertificateRow.serial)
Index("ix_ca_certificates_renewal_of", CertificateRow.renewal_of)

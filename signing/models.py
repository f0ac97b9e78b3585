"""The signatures table: one row per signature or document timestamp made by the platform.

Rows stay in the store layer; :class:`signing.service.SignatureService` hands
out :class:`signing.service.SignatureRecord` values.  The signed document
itself is stored only when ``[signing] keep_signed_files`` is set.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from core.store import Base, UTCDateTime


class SignatureRow(Base):
    """A signature made here: what was signed, by which key and certificate, for whom, committed with its
    audit record before the signed output is returned."""

    __tablename__ = "signing_signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # pdf | cms | doc-timestamp
    document_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    output_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    output_size: Mapped[int] = mapped_column(Integer, nullable=False)
    signer_serial: Mapped[str] = mapped_column(String(42), nullable=False)  # lower-case hex
    signer_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)  # SHA-256 of the DER
    signer_subject: Mapped[str] = mapped_column(String(500), nullable=False)
    key_id: Mapped[str] = mapped_column(String(200), nullable=False)
    seal: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signatory: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the person, for personal keys
    level: Mapped[str] = mapped_column(String(10), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    requester: Mapped[str] = mapped_column(String(200), nullable=False)
    output: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


Index("ix_signing_signatures_created_at", SignatureRow.created_at)
Index("ix_signing_signatures_document_sha256", SignatureRow.document_sha256)
Index("ix_signing_signatures_output_sha256", SignatureRow.output_sha256)

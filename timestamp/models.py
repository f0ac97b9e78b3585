"""The timestamp table: one row per granted token.  Rows stay in the store layer.

The service hands out :class:`timestamp.service.StoredTimestamp` values; routes
never see these rows.  The serial number is unique: a (vanishingly unlikely)
collision of two random serials fails the second token's commit, and that
token is never returned.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.store import Base, HexSerial, UTCDateTime


class TimestampTokenRow(Base):
    """A granted token: what it says and who asked, committed with its audit record before it is returned."""

    __tablename__ = "timestamp_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[int] = mapped_column(HexSerial, nullable=False, unique=True)
    gen_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    hash_algorithm: Mapped[str] = mapped_column(String(20), nullable=False)
    message_imprint: Mapped[str] = mapped_column(String(128), nullable=False)  # lower-case hex
    policy: Mapped[str] = mapped_column(String(200), nullable=False)
    # Hex; a client may send a nonce of any length (RFC 3161 bounds it only by the request size).
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    cert_req: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    requester: Mapped[str] = mapped_column(String(200), nullable=False)  # principal or client address
    tsa_certificate: Mapped[str] = mapped_column(String(64), nullable=False)  # SHA-256 of the signer's DER


Index("ix_timestamp_tokens_gen_time", TimestampTokenRow.gen_time)
Index("ix_timestamp_tokens_message_imprint", TimestampTokenRow.message_imprint)

"""Drill tables: the drill history.  Rows stay in the store layer; the service hands out frozen values."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.store import Base, UTCDateTime


class DrillRow(Base):
    """One drill: written when it starts (result ``running``) and completed with its audit record when it ends."""

    __tablename__ = "dr_drills"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[str] = mapped_column(String(20), nullable=False)  # running | passed | failed | could_not_run
    trigger: Mapped[str] = mapped_column(String(20), nullable=False)  # cli | api | schedule
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    node: Mapped[str] = mapped_column(String(200), nullable=False)
    repository: Mapped[str] = mapped_column(String(100), nullable=False)
    snapshot_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failing_step: Mapped[str | None] = mapped_column(String(60), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    rto_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    rpo_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    report_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    report_pdf: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    report_pdf_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


Index("ix_dr_drills_started", DrillRow.started_at)

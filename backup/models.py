"""Backup tables: the run history.  Rows stay in the store layer; the service hands out frozen values."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.store import Base, UTCDateTime


class BackupRunRow(Base):
    """One backup or check run, written with its audit record in one transaction when it ends."""

    __tablename__ = "backup_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # backup | check
    trigger: Mapped[str] = mapped_column(String(20), nullable=False)  # schedule | cli | api
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    node: Mapped[str] = mapped_column(String(200), nullable=False)  # host:pid that ran it
    repository: Mapped[str] = mapped_column(String(100), nullable=False)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    duration_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    result: Mapped[str] = mapped_column(String(20), nullable=False)  # success | failed
    snapshot_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    files_total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    files_new: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    files_changed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bytes_processed: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bytes_added: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str] = mapped_column(Text, nullable=False, default="{}")  # JSON: copies, retention, subset
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)


Index("ix_backup_runs_job_kind_result", BackupRunRow.job, BackupRunRow.kind, BackupRunRow.result)

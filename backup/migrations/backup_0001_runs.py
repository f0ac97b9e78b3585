"""Backup tables: the run history.

Revision ID: backup_0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "backup_0001"
down_revision = None
branch_labels = ("backup",)
depends_on = "core_0001"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "backup_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("node", sa.String(200), nullable=False),
        sa.Column("repository", sa.String(100), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("result", sa.String(20), nullable=False),
        sa.Column("snapshot_id", sa.String(64), nullable=True),
        sa.Column("files_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("files_new", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("files_changed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes_processed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes_added", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("manifest_sha256", sa.String(64), nullable=True),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("error_code", sa.String(100), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
    )
    op.create_index("ix_backup_runs_job_kind_result", "backup_runs", ["job", "kind", "result"])


def downgrade() -> None:
    op.drop_index("ix_backup_runs_job_kind_result", "backup_runs")
    op.drop_table("backup_runs")

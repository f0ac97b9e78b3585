"""Drill tables: the drill history.

Revision ID: dr_0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "dr_0001"
down_revision = None
branch_labels = ("dr",)
depends_on = "core_0001"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dr_drills",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("result", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("node", sa.String(200), nullable=False),
        sa.Column("repository", sa.String(100), nullable=False),
        sa.Column("snapshot_id", sa.String(64), nullable=True),
        sa.Column("failing_step", sa.String(60), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("error_code", sa.String(100), nullable=True),
        sa.Column("rto_seconds", sa.Float, nullable=True),
        sa.Column("rpo_seconds", sa.Float, nullable=True),
        sa.Column("report_json", sa.Text, nullable=False, server_default="{}"),
        sa.Column("report_pdf", sa.LargeBinary, nullable=True),
        sa.Column("report_pdf_sha256", sa.String(64), nullable=True),
    )
    op.create_index("ix_dr_drills_started", "dr_drills", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_dr_drills_started", "dr_drills")
    op.drop_table("dr_drills")

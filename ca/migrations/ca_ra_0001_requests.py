"""Registration authority: certificate requests and their approvals (ca/ra.py).

Revision ID: ca_ra_0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "ca_ra_0001"
down_revision = None
branch_labels = ("ca_ra",)
depends_on = "ca_0001"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ca_ra_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("profile", sa.String(100), nullable=False, index=True),
        sa.Column("ca", sa.String(100), nullable=True),
        sa.Column("subject_login", sa.String(100), nullable=False, index=True),
        sa.Column("subject_json", sa.Text, nullable=False),
        sa.Column("sans_json", sa.Text, nullable=False),
        sa.Column("key_mode", sa.String(20), nullable=False),
        sa.Column("csr_der", sa.LargeBinary, nullable=True),
        sa.Column("validity_days", sa.Integer, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("rule", sa.String(10), nullable=False),
        sa.Column("approvals_required", sa.Integer, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.Column("certificate_id", sa.Integer, nullable=True),
        sa.Column("issued_at", TZ, nullable=True),
    )
    op.create_table(
        "ca_ra_approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("ca_ra_requests.id"), nullable=False, index=True),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("approved_at", TZ, nullable=False),
        sa.UniqueConstraint("request_id", "approver", name="uq_ca_ra_approvals_approver"),
    )


def downgrade() -> None:
    op.drop_table("ca_ra_approvals")
    op.drop_table("ca_ra_requests")

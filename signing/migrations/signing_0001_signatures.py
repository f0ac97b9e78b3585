"""Signing tables: the record of every signature made.

Revision ID: signing_0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "signing_0001"
down_revision = None
branch_labels = ("signing",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "signing_signatures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("document_sha256", sa.String(64), nullable=False),
        sa.Column("output_sha256", sa.String(64), nullable=False),
        sa.Column("output_size", sa.Integer, nullable=False),
        sa.Column("signer_serial", sa.String(42), nullable=False),
        sa.Column("signer_fingerprint", sa.String(64), nullable=False),
        sa.Column("signer_subject", sa.String(500), nullable=False),
        sa.Column("key_id", sa.String(200), nullable=False),
        sa.Column("seal", sa.String(64), nullable=True),
        sa.Column("signatory", sa.String(200), nullable=True),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("output", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_signing_signatures_created_at", "signing_signatures", ["created_at"])
    op.create_index("ix_signing_signatures_document_sha256", "signing_signatures", ["document_sha256"])
    op.create_index("ix_signing_signatures_output_sha256", "signing_signatures", ["output_sha256"])


def downgrade() -> None:
    op.drop_index("ix_signing_signatures_output_sha256", "signing_signatures")
    op.drop_index("ix_signing_signatures_document_sha256", "signing_signatures")
    op.drop_index("ix_signing_signatures_created_at", "signing_signatures")
    op.drop_table("signing_signatures")

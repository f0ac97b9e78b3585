"""Timestamp tables: the granted tokens.

Revision ID: timestamp_0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "timestamp_0001"
down_revision = None
branch_labels = ("timestamp",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "timestamp_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("serial", sa.String(42), nullable=False),
        sa.Column("gen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hash_algorithm", sa.String(20), nullable=False),
        sa.Column("message_imprint", sa.String(128), nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("nonce", sa.Text, nullable=True),
        sa.Column("cert_req", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("tsa_certificate", sa.String(64), nullable=False),
        sa.UniqueConstraint("serial", name="uq_timestamp_tokens_serial"),
    )
    op.create_index("ix_timestamp_tokens_gen_time", "timestamp_tokens", ["gen_time"])
    op.create_index("ix_timestamp_tokens_message_imprint", "timestamp_tokens", ["message_imprint"])


def downgrade() -> None:
    op.drop_index("ix_timestamp_tokens_message_imprint", "timestamp_tokens")
    op.drop_index("ix_timestamp_tokens_gen_time", "timestamp_tokens")
    op.drop_table("timestamp_tokens")

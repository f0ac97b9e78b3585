"""CA key lifecycle: rollover successor of a CA (and the ``offline`` status of a root kept off the network).

Revision ID: ca_0002
Revises: ca_0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "ca_0002"
down_revision = "ca_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ca_authorities", sa.Column("superseded_by", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ca_authorities") as batch:
        batch.drop_column("superseded_by")

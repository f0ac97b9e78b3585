"""Authentication tables: TOTP second factors, sessions, refresh tokens, client secrets.

Revision ID: directory_0002_auth
Revises: directory_0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "directory_0002_auth"
down_revision = "directory_0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "directory_auth_totp",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("directory_users.id"), primary_key=True),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("confirmed_at", TZ, nullable=True),
        sa.Column("last_step", sa.Integer, nullable=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_auth_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("directory_users.id"), nullable=False, index=True),
        sa.Column("login", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("amr", sa.String(100), nullable=False),
        sa.Column("auth_time", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_used_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("revoke_reason", sa.String(40), nullable=True),
        sa.Column("source", sa.String(100), nullable=False, server_default=""),
    )
    op.create_index("ix_directory_auth_sessions_login", "directory_auth_sessions", ["login"])
    op.create_table(
        "directory_auth_refresh_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "session_id", sa.String(64), sa.ForeignKey("directory_auth_sessions.id"), nullable=False, index=True
        ),
        sa.Column("issued_at", TZ, nullable=False),
        sa.Column("used_at", TZ, nullable=True),
    )
    op.create_table(
        "directory_auth_client_secrets",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("directory_users.id"), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("directory_auth_client_secrets")
    op.drop_table("directory_auth_refresh_tokens")
    op.drop_index("ix_directory_auth_sessions_login", table_name="directory_auth_sessions")
    op.drop_table("directory_auth_sessions")
    op.drop_table("directory_auth_totp")

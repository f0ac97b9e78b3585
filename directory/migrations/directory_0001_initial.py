"""Directory tables: departments, users, password history, certificates, login sources, groups, roles, outbox.

Revision ID: directory_0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "directory_0001"
down_revision = None
branch_labels = ("directory",)
depends_on = "core_0001"

TZ = sa.DateTime(timezone=True)
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "directory_departments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("directory_departments.id"), nullable=True, index=True),
        sa.Column("sibling_key", sa.String(230), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("login", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False, server_default="person"),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("given_name", sa.String(100), nullable=True),
        sa.Column("surname", sa.String(100), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("directory_departments.id"), nullable=True, index=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="active", index=True),
        sa.Column("lock_reason", sa.String(40), nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("auth_source", sa.String(60), nullable=False, server_default="local"),
        sa.Column("external_dn", sa.String(1000), nullable=True),
        sa.Column("password_hash", sa.String(300), nullable=True),
        sa.Column("password_changed_at", TZ, nullable=True),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failure_window_start", TZ, nullable=True),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("lockout_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_login_at", TZ, nullable=True),
        sa.Column("published_locked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_password_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("directory_users.id"), nullable=False, index=True),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_user_certificates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("directory_users.id"), nullable=False, index=True),
        sa.Column("certificate_der", sa.LargeBinary, nullable=False),
        sa.Column("added_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_login_sources",
        sa.Column("address", sa.String(100), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("window_start", TZ, nullable=False),
        sa.Column("blocked_until", TZ, nullable=True),
    )
    op.create_table(
        "directory_groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_group_members",
        sa.Column("group_id", sa.Integer, sa.ForeignKey("directory_groups.id"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("directory_users.id"), primary_key=True, index=True),
        sa.Column("added_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_roles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_role_permissions",
        sa.Column("role_id", sa.Integer, sa.ForeignKey("directory_roles.id"), primary_key=True),
        sa.Column("permission", sa.String(100), primary_key=True),
    )
    op.create_table(
        "directory_role_assignments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("directory_users.id"), nullable=False, index=True),
        sa.Column("role_id", sa.Integer, sa.ForeignKey("directory_roles.id"), nullable=False, index=True),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("directory_departments.id"), nullable=True),
        sa.Column("assignment_key", sa.String(60), nullable=False, unique=True),
        sa.Column("granted_at", TZ, nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_directory_role_assignments_department", "directory_role_assignments", ["department_id"])
    op.create_table(
        "directory_published_cas",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("certificate_der", sa.LargeBinary, nullable=False),
        sa.Column("crl_der", sa.LargeBinary, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "directory_outbox",
        sa.Column("sequence", SEQUENCE, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(20), nullable=False),
        sa.Column("key", sa.String(1000), nullable=False),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_attempt_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("alerted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_directory_outbox_status_sequence", "directory_outbox", ["status", "sequence"])


def downgrade() -> None:
    for table in (
        "directory_outbox",
        "directory_published_cas",
        "directory_role_assignments",
        "directory_role_permissions",
        "directory_roles",
        "directory_group_members",
        "directory_groups",
        "directory_login_sources",
        "directory_user_certificates",
        "directory_password_history",
        "directory_users",
        "directory_departments",
    ):
        op.drop_table(table)

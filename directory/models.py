"""Directory tables: departments, users, groups, roles, password history, lockout state, the LDAP outbox.

These rows stay inside the store layer: :mod:`directory.service` turns them
into the frozen values of :mod:`directory.values` before anything leaves it.

Uniqueness that involves a nullable column (a root department has no parent,
a role granted everywhere has no department) is enforced through a derived
key column (``sibling_key``, ``assignment_key``), because SQL treats NULLs as
distinct in unique constraints.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.store import Base, UTCDateTime

# An auto-incrementing 64-bit key; SQLite only auto-increments INTEGER PRIMARY KEY.
OutboxSequence = BigInteger().with_variant(Integer(), "sqlite")


class DepartmentRow(Base):
    __tablename__ = "directory_departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("directory_departments.id"), nullable=True, index=True)
    # "<parent id or 0>:<case-folded name>": siblings may not share a name (their LDAP DNs would collide).
    sibling_key: Mapped[str] = mapped_column(String(230), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class UserRow(Base):
    __tablename__ = "directory_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="person")  # person | service
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    given_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    surname: Mapped[str | None] = mapped_column(String(100), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("directory_departments.id"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active", index=True)
    lock_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)  # administrator | lockout
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    auth_source: Mapped[str] = mapped_column(String(60), nullable=False, default="local")  # local | ldap:<name>
    external_dn: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failure_window_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lockout_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Whether the last change queued for LDAP published the user without a password
    # (locked, disabled, expired); the expiry sweep compares it with the present.
    published_locked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class PasswordHistoryRow(Base):
    """Earlier password hashes of a user, newest last; only the last ``[passwords] history`` are kept."""

    __tablename__ = "directory_password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("directory_users.id"), nullable=False, index=True)
    password_hash: Mapped[str] = mapped_column(String(300), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class UserCertificateRow(Base):
    __tablename__ = "directory_user_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("directory_users.id"), nullable=False, index=True)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class LoginSourceRow(Base):
    """Failed logins counted per source address (password spraying across accounts)."""

    __tablename__ = "directory_login_sources"

    address: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class GroupRow(Base):
    __tablename__ = "directory_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    name_key: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)  # case-folded, as LDAP compares
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class GroupMemberRow(Base):
    __tablename__ = "directory_group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("directory_groups.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("directory_users.id"), primary_key=True, index=True)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class RoleRow(Base):
    __tablename__ = "directory_roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class RolePermissionRow(Base):
    __tablename__ = "directory_role_permissions"

    role_id: Mapped[int] = mapped_column(ForeignKey("directory_roles.id"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(100), primary_key=True)


class RoleAssignmentRow(Base):
    """A role held by a user or service account, everywhere or only within one department's subtree."""

    __tablename__ = "directory_role_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("directory_users.id"), nullable=False, index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("directory_roles.id"), nullable=False, index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("directory_departments.id"), nullable=True)
    assignment_key: Mapped[str] = mapped_column(String(60), nullable=False, unique=True)  # "user:role:dept or 0"
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    granted_by: Mapped[str] = mapped_column(String(200), nullable=False)


class PublishedCARow(Base):
    """CA certificates and CRLs handed to the directory for publishing, so a full sync knows them."""

    __tablename__ = "directory_published_cas"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    crl_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class OutboxRow(Base):
    """One change waiting to be applied to LDAP, in ``sequence`` order.

    ``payload`` is JSON holding what LDAP needs (never a plain password; the
    argon2 hash, which LDAP stores, is fine).  ``status`` is ``pending`` or
    ``failed`` (set aside after ``[directory] max_attempts`` refusals).
    """

    __tablename__ = "directory_outbox"

    sequence: Mapped[int] = mapped_column(OutboxSequence, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(20), nullable=False)  # department | user | group | ca
    key: Mapped[str] = mapped_column(String(1000), nullable=False)  # login, group name, CA name, department path
    operation: Mapped[str] = mapped_column(String(20), nullable=False)  # upsert | delete | move
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    alerted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


Index("ix_directory_outbox_status_sequence", OutboxRow.status, OutboxRow.sequence)
Index("ix_directory_role_assignments_department", RoleAssignmentRow.department_id)

"""The directory's domain values: what the service hands to routes, the CLI and other components.

Frozen dataclasses, built from the store rows inside a transaction; no
SQLAlchemy object leaves :mod:`directory.service`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

UserStatus = Literal["active", "locked", "disabled"]
UserKind = Literal["person", "service"]
USER_STATUSES: tuple[str, ...] = ("active", "locked", "disabled")
USER_KINDS: tuple[str, ...] = ("person", "service")
LOCAL_AUTH = "local"


@dataclasses.dataclass(frozen=True)
class Department:
    code: str
    name: str
    parent_code: str | None
    path: tuple[str, ...]  # names from the top department down to this one
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class User:
    """A user or service account as administrators see it (lockout state included; never the hash)."""

    login: str
    kind: str
    display_name: str
    given_name: str | None
    surname: str | None
    email: str | None
    phone: str | None
    department_code: str | None
    department_path: tuple[str, ...]
    status: str
    lock_reason: str | None
    expires_at: dt.datetime | None
    expired: bool
    auth_source: str
    external_dn: str | None
    has_password: bool
    password_changed_at: dt.datetime | None
    password_expires_at: dt.datetime | None
    failed_logins: int
    locked_until: dt.datetime | None
    lockout_count: int
    last_login_at: dt.datetime | None
    certificates: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def can_log_in(self) -> bool:
        """Active, not expired and not temporarily locked at the time the value was built."""
        return self.status == "active" and not self.expired and self.locked_until is None


@dataclasses.dataclass(frozen=True)
class Group:
    name: str
    description: str | None
    members: tuple[str, ...]  # logins, sorted
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Role:
    name: str
    display_name: str | None
    description: str | None
    permissions: tuple[str, ...]  # sorted
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class RoleAssignment:
    """``role`` held by ``login``; ``department_code`` None means everywhere, else that department's subtree."""

    login: str
    role: str
    department_code: str | None
    permissions: tuple[str, ...]
    granted_at: dt.datetime
    granted_by: str


@dataclasses.dataclass(frozen=True)
class ImportedUserOutcome:
    login: str
    outcome: Literal["created", "updated", "skipped"]
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Account:
    """An account that has just passed a password check: what is needed to start a session for it."""

    id: int
    login: str
    kind: str  # person | service


@dataclasses.dataclass(frozen=True)
class ImportReport:
    users: tuple[ImportedUserOutcome, ...]
    groups_created: tuple[str, ...] = ()
    memberships_added: int = 0
    dry_run: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for u in self.users if u.outcome == outcome)

"""The directory service: users, service accounts, departments, groups, roles, passwords, login.

Hengxin is the source of truth for the directory.  Every write here is one
transaction that changes the tables, appends an audit record and, when LDAP
publishing is enabled, adds the matching change to the LDAP outbox
(:mod:`directory.outbox`), so a change, its audit record and its
publication commit together or not at all.  The publisher
(:mod:`directory.publisher`) applies the outbox to OpenLDAP later; a
change succeeds here even when LDAP is down.

Argon2 work (hashing a new password, checking the history, verifying a
login) happens outside the transactions, so a slow hash never holds the
database's write lock.

Authentication (:meth:`DirectoryService.authenticate`) answers every failure
with the same :class:`InvalidCredentials`, after the same hasher work, and
writes the real reason to the audit log.  Administrative operations raise
specific errors (``directory.user_not_found`` ...): they are for callers
holding directory permissions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

from cryptography import x509
from sqlalchemy import Table, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.alerts import AlertChannel
from core.audit import AuditEvent, AuditLog
from core.clock import Clock, isoformat_utc, utc_now
from core.config import PasswordSettings
from core.store import read_transaction, transaction
from directory.errors import DirectoryError, LDAPInvalidCredentials
from directory.federation import ExternalDirectoryContent, FederatedDirectories
from directory.ldap_mapping import PublishedCA, PublishedDepartment, PublishedGroup, PublishedUser, normalize_dn
from directory.models import (
    DepartmentRow,
    GroupMemberRow,
    GroupRow,
    LoginSourceRow,
    PasswordHistoryRow,
    PublishedCARow,
    RoleAssignmentRow,
    RolePermissionRow,
    RoleRow,
    UserCertificateRow,
    UserRow,
)
from directory.outbox import ca_payload, department_payload, enqueue, group_payload, user_payload
from directory.passwords import (
    AccountCounters,
    Argon2Parameters,
    LockoutPolicy,
    PasswordHasher,
    PasswordPolicy,
    SourceCounters,
    register_account_failure,
    register_source_failure,
)
from directory.service_errors import (
    DepartmentCycle,
    DepartmentNotEmpty,
    DepartmentNotFound,
    DuplicateDepartment,
    DuplicateGroup,
    DuplicateLogin,
    DuplicateRole,
    GroupNotFound,
    InvalidCredentials,
    InvalidDirectoryValue,
    InvalidUserState,
    PasswordExpired,
    PasswordPolicyViolation,
    RoleAssignmentNotFound,
    RoleInUse,
    RoleNotFound,
    UserNotFound,
)
from directory.validation import (
    auth_source as check_auth_source,
)
from directory.validation import (
    department_code,
    email_address,
    group_name,
    normalize_login,
    optional_text,
    permission_name,
    phone_number,
    role_name,
    text_value,
)
from directory.values import (
    LOCAL_AUTH,
    USER_KINDS,
    USER_STATUSES,
    Account,
    Department,
    Group,
    ImportedUserOutcome,
    ImportReport,
    Role,
    RoleAssignment,
    User,
)

log = logging.getLogger("hengxin.directory")

MAX_DEPARTMENT_DEPTH = 32
SYSTEM_ACTOR = "system"
UNSET: Any = object()  # "leave this field as it is" in updates
T = TypeVar("T")

# Fields of a user an update may change, with their checks.
_USER_TEXT_FIELDS = {"given_name": 100, "surname": 100}


_ASSIGNMENT_TABLE = RoleAssignmentRow.__table__
_ROLE_TABLE = RoleRow.__table__
_PERMISSION_TABLE = RolePermissionRow.__table__
_DEPARTMENT_TABLE = DepartmentRow.__table__

# A user's role assignments with their permissions, one row per permission: built once, on the tables, because
# every authenticated request runs it (statement construction and ORM loading would cost more than the query).
# Every authenticated request reads these (api/auth.py through directory.auth.AuthService).
ASSIGNMENTS = (
    select(
        _ASSIGNMENT_TABLE.c.id,
        _ROLE_TABLE.c.name,
        _DEPARTMENT_TABLE.c.code,
        _ASSIGNMENT_TABLE.c.granted_at,
        _ASSIGNMENT_TABLE.c.granted_by,
        _PERMISSION_TABLE.c.permission,
    )
    .select_from(_ASSIGNMENT_TABLE)
    .join(_ROLE_TABLE, _ROLE_TABLE.c.id == _ASSIGNMENT_TABLE.c.role_id)
    .outerjoin(_DEPARTMENT_TABLE, _DEPARTMENT_TABLE.c.id == _ASSIGNMENT_TABLE.c.department_id)
    .outerjoin(_PERMISSION_TABLE, _PERMISSION_TABLE.c.role_id == _ASSIGNMENT_TABLE.c.role_id)
    .where(_ASSIGNMENT_TABLE.c.user_id == bindparam("user_id"))
    .order_by(_ROLE_TABLE.c.name, _ASSIGNMENT_TABLE.c.id, _PERMISSION_TABLE.c.permission)
)


_USER_TABLE = cast(Table, UserRow.__table__)

# What authentication reads before the password check, in _LoginSnapshot's field order; and the source
# address's block.  Built once: every login runs them.
_LOGIN_SNAPSHOT = select(
    _USER_TABLE.c.id,
    _USER_TABLE.c.login,
    _USER_TABLE.c.kind,
    _USER_TABLE.c.status,
    _USER_TABLE.c.auth_source,
    _USER_TABLE.c.password_hash,
    _USER_TABLE.c.password_changed_at,
    _USER_TABLE.c.expires_at,
    _USER_TABLE.c.locked_until,
).where(_USER_TABLE.c.login == bindparam("login"))
_SOURCE_BLOCKED_UNTIL = select(LoginSourceRow.__table__.c.blocked_until).where(
    LoginSourceRow.__table__.c.address == bindparam("address")
)
# A right password: reset the failure counters and stamp the login, only if the password hash and the status
# are still those that were checked (new_hash is the checked hash unless the hash is being upgraded).
_RECORD_SUCCESS = (
    update(_USER_TABLE)
    .where(
        _USER_TABLE.c.id == bindparam("user_id"),
        _USER_TABLE.c.password_hash.is_not_distinct_from(bindparam("checked_hash")),
        _USER_TABLE.c.status == bindparam("checked_status"),
    )
    .values(
        failed_logins=0,
        failure_window_start=None,
        locked_until=None,
        lockout_count=0,
        last_login_at=bindparam("now"),
        password_hash=bindparam("new_hash"),
    )
)


@dataclasses.dataclass(frozen=True)
class _LoginSnapshot:
    """What authentication needs to know about a user, read before the (slow) password check."""

    user_id: int
    login: str
    kind: str
    status: str
    auth_source: str
    password_hash: str | None
    password_changed_at: dt.datetime | None
    expires_at: dt.datetime | None
    locked_until: dt.datetime | None


class _DryRun(Exception):
    """Rolls back an import run with ``dry_run``; carries the report."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


class DirectoryService:
    """Directory operations; thread-safe (each call uses its own sessions).

    ``publishing`` says whether changes are queued for LDAP (``[directory]
    enabled``); ``federation`` holds the configured external directories.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        clock: Clock = utc_now,
        passwords: PasswordSettings | None = None,
        publishing: bool = False,
        federation: FederatedDirectories | None = None,
        alerts: AlertChannel | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        settings = passwords or PasswordSettings.model_validate({})
        self.sessions = sessions
        self.audit = audit
        self.clock = clock
        self.publishing = publishing
        self.federation = federation
        self.alerts = alerts
        self.policy = PasswordPolicy.from_settings(settings)
        self.lockout = LockoutPolicy.from_settings(settings)
        self.hasher = hasher or PasswordHasher(Argon2Parameters.from_settings(settings))
        self._change_listeners: list[Callable[[], None]] = []
        self._grant_checks: list[Callable[[Session, int, str, str], None]] = []
        self._status_listeners: list[Callable[[User, str], None]] = []

    # -- plumbing ---------------------------------------------------------------------------

    def add_change_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every committed transaction that queued an LDAP change."""
        self._change_listeners.append(callback)

    def add_grant_check(self, check: Callable[[Session, int, str, str], None]) -> None:
        """Call ``check(session, user_id, login, role)`` before a new grant; it raises to refuse it."""
        self._grant_checks.append(check)

    def add_status_listener(self, callback: Callable[[User, str], None]) -> None:
        """Call ``callback(user, actor)`` after a committed status change (lock, unlock, disable, enable)."""
        self._status_listeners.append(callback)

    def _notify(self) -> None:
        for callback in self._change_listeners:
            try:
                callback()
            except Exception:  # a listener must never fail a committed write
                log.exception("directory change listener failed")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Session]:
        with transaction(self.sessions) as session:
            yield session

    @contextlib.contextmanager
    def _read(self) -> Iterator[Session]:
        """A snapshot for lookups: no write lock on SQLite, so reads never queue behind writers."""
        with read_transaction(self.sessions) as session:
            yield session

    def _audit(
        self,
        session: Session,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
        *,
        outcome: str = "success",
        source: str = "",
    ) -> None:
        self.audit.append(
            session,
            actor=actor,
            action=action,
            target=target[:500],
            outcome=outcome,
            source=source[:100],
            details=details or {},
        )

    def _enqueue(self, session: Session, entity: str, key: str, operation: str, payload: dict[str, Any]) -> None:
        if not self.publishing:
            return
        enqueue(
            session,
            entity=entity,
            key=key,
            operation=operation,
            payload=payload,
            now=self.clock(),
            on_commit=self._notify,
        )

    # -- lookups ----------------------------------------------------------------------------

    @staticmethod
    def _user_row(session: Session, login: str, *, for_update: bool = False) -> UserRow:
        try:
            normalized = normalize_login(login)
        except InvalidDirectoryValue:
            normalized = None
        row = None
        if normalized is not None:
            query = select(UserRow).where(UserRow.login == normalized)
            if for_update:
                query = query.with_for_update()
            row = session.scalar(query)
        if row is None:
            raise UserNotFound(f"no user with login {login!r}", detail_zh=f"用户 {login!r} 不存在", login=login)
        return row

    @staticmethod
    def _user_by_id(session: Session, user_id: int) -> UserRow:
        row = session.get(UserRow, user_id)
        if row is None:
            raise UserNotFound(f"no user with id {user_id}", detail_zh="用户不存在")
        return row

    @staticmethod
    def _department_row(session: Session, code: str) -> DepartmentRow:
        row = session.scalar(select(DepartmentRow).where(DepartmentRow.code == code))
        if row is None:
            raise DepartmentNotFound(
                f"no department with code {code!r}", detail_zh=f"部门 {code!r} 不存在", department=code
            )
        return row

    @staticmethod
    def _group_row(session: Session, name: str) -> GroupRow:
        row = session.scalar(select(GroupRow).where(GroupRow.name_key == name.strip().casefold()))
        if row is None:
            raise GroupNotFound(f"no group named {name!r}", detail_zh=f"组 {name!r} 不存在", group=name)
        return row

    @staticmethod
    def _role_row(session: Session, name: str) -> RoleRow:
        row = session.scalar(select(RoleRow).where(RoleRow.name == name))
        if row is None:
            raise RoleNotFound(f"no role named {name!r}", detail_zh=f"角色 {name!r} 不存在", role=name)
        return row

    @staticmethod
    def _ancestors(session: Session, department: DepartmentRow) -> list[DepartmentRow]:
        """``department`` and its ancestors, top first."""
        chain = [department]
        current = department
        while current.parent_id is not None:
            if len(chain) > MAX_DEPARTMENT_DEPTH:
                raise DepartmentCycle(f"department {department.code!r} is nested too deeply or in a cycle")
            parent = session.get(DepartmentRow, current.parent_id)
            if parent is None:  # pragma: no cover - the foreign key forbids it
                break
            chain.append(parent)
            current = parent
        return list(reversed(chain))

    def _path(self, session: Session, department_id: int | None) -> tuple[str, ...]:
        if department_id is None:
            return ()
        department = session.get(DepartmentRow, department_id)
        if department is None:  # pragma: no cover - the foreign key forbids it
            return ()
        return tuple(d.name for d in self._ancestors(session, department))

    def _descendant_ids(self, session: Session, root_id: int) -> set[int]:
        children: dict[int | None, list[int]] = {}
        for department_id, parent_id in session.execute(select(DepartmentRow.id, DepartmentRow.parent_id)):
            children.setdefault(parent_id, []).append(department_id)
        found, stack = {root_id}, [root_id]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    # -- conversion -------------------------------------------------------------------------

    def _password_expires_at(self, row: UserRow | _LoginSnapshot) -> dt.datetime | None:
        if row.kind != "person" or row.auth_source != LOCAL_AUTH or row.password_hash is None:
            return None
        return self.policy.expires_at(row.password_changed_at)

    def _publish_locked(self, row: UserRow, now: dt.datetime) -> bool:
        """Whether LDAP must refuse binds: locked, disabled, expired account or expired password."""
        if row.status != "active":
            return True
        if row.expires_at is not None and row.expires_at <= now:
            return True
        password_expiry = self._password_expires_at(row)
        return password_expiry is not None and password_expiry <= now

    def _user_value(self, session: Session, row: UserRow, now: dt.datetime, certificates: int | None = None) -> User:
        department = session.get(DepartmentRow, row.department_id) if row.department_id is not None else None
        if certificates is None:
            certificates = (
                session.scalar(
                    select(func.count()).select_from(UserCertificateRow).where(UserCertificateRow.user_id == row.id)
                )
                or 0
            )
        return User(
            login=row.login,
            kind=row.kind,
            display_name=row.display_name,
            given_name=row.given_name,
            surname=row.surname,
            email=row.email,
            phone=row.phone,
            department_code=department.code if department is not None else None,
            department_path=self._path(session, row.department_id),
            status=row.status,
            lock_reason=row.lock_reason,
            expires_at=row.expires_at,
            expired=row.expires_at is not None and row.expires_at <= now,
            auth_source=row.auth_source,
            external_dn=row.external_dn,
            has_password=row.password_hash is not None,
            password_changed_at=row.password_changed_at,
            password_expires_at=self._password_expires_at(row),
            failed_logins=row.failed_logins,
            locked_until=row.locked_until if row.locked_until is not None and row.locked_until > now else None,
            lockout_count=row.lockout_count,
            last_login_at=row.last_login_at,
            certificates=certificates,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _department_value(self, session: Session, row: DepartmentRow) -> Department:
        chain = self._ancestors(session, row)
        parent = chain[-2] if len(chain) > 1 else None
        return Department(
            code=row.code,
            name=row.name,
            parent_code=parent.code if parent is not None else None,
            path=tuple(d.name for d in chain),
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @staticmethod
    def _group_members(session: Session, group_id: int) -> tuple[str, ...]:
        logins = session.scalars(
            select(UserRow.login)
            .join(GroupMemberRow, GroupMemberRow.user_id == UserRow.id)
            .where(GroupMemberRow.group_id == group_id)
            .order_by(UserRow.login)
        )
        return tuple(logins)

    def _group_value(self, session: Session, row: GroupRow) -> Group:
        return Group(row.name, row.description, self._group_members(session, row.id), row.created_at, row.updated_at)

    @staticmethod
    def _role_permissions(session: Session, role_id: int) -> tuple[str, ...]:
        return tuple(
            session.scalars(
                select(RolePermissionRow.permission)
                .where(RolePermissionRow.role_id == role_id)
                .order_by(RolePermissionRow.permission)
            )
        )

    def _role_value(self, session: Session, row: RoleRow) -> Role:
        return Role(
            row.name,
            row.display_name,
            row.description,
            self._role_permissions(session, row.id),
            row.created_at,
            row.updated_at,
        )

    # -- what LDAP should hold ---------------------------------------------------------------

    def _published_user(self, session: Session, row: UserRow, now: dt.datetime) -> PublishedUser:
        certificates = tuple(
            session.scalars(
                select(UserCertificateRow.certificate_der)
                .where(UserCertificateRow.user_id == row.id)
                .order_by(UserCertificateRow.id)
            )
        )
        return PublishedUser(
            login=row.login,
            display_name=row.display_name,
            given_name=row.given_name,
            surname=row.surname,
            email=row.email,
            phone=row.phone,
            department_path=self._path(session, row.department_id),
            password_hash=row.password_hash if row.auth_source == LOCAL_AUTH else None,
            locked=self._publish_locked(row, now),
            certificates=certificates,
        )

    def _published_department(self, session: Session, row: DepartmentRow) -> PublishedDepartment:
        path = tuple(d.name for d in self._ancestors(session, row))
        return PublishedDepartment(id=row.code, name=row.name, parent_path=path[:-1], description=row.description)

    def _published_group(self, session: Session, row: GroupRow) -> PublishedGroup:
        return PublishedGroup(name=row.name, members=self._group_members(session, row.id), description=row.description)

    def _queue_user(self, session: Session, row: UserRow) -> None:
        now = self.clock()
        published = self._published_user(session, row, now)
        row.published_locked = published.locked
        self._enqueue(session, "user", row.login, "upsert", user_payload(published))

    def _queue_group(self, session: Session, row: GroupRow) -> None:
        self._enqueue(session, "group", row.name, "upsert", group_payload(self._published_group(session, row)))

    def _queue_department(self, session: Session, row: DepartmentRow) -> None:
        published = self._published_department(session, row)
        self._enqueue(session, "department", "/".join(published.path), "upsert", department_payload(published))

    def published_state(
        self, session: Session
    ) -> tuple[list[PublishedDepartment], list[PublishedUser], list[PublishedGroup], list[PublishedCA]]:
        """Everything LDAP should hold now, for a full reconciliation (read inside ``session``)."""
        now = self.clock()
        departments = [self._published_department(session, row) for row in session.scalars(select(DepartmentRow))]
        users = [
            self._published_user(session, row, now) for row in session.scalars(select(UserRow).order_by(UserRow.id))
        ]
        groups = [self._published_group(session, row) for row in session.scalars(select(GroupRow))]
        cas = [
            PublishedCA(row.name, row.certificate_der, row.crl_der) for row in session.scalars(select(PublishedCARow))
        ]
        return departments, users, groups, cas

    def sweep_expired(self) -> int:
        """Queue users whose LDAP publication must change because time passed.

        An account that expired, or a password older than the maximum age,
        must stop binding at LDAP although nothing was changed in Hengxin.
        Returns how many users were queued.  Does nothing without publishing.
        """
        if not self.publishing:
            return 0
        now = self.clock()
        queued = 0
        with self._transaction() as session:
            # Published with a password but now expired, or published without one while it may bind again.
            became_locked = [UserRow.expires_at <= now]
            if self.policy.max_age_days > 0:
                became_locked.append(
                    (UserRow.kind == "person")
                    & (UserRow.auth_source == LOCAL_AUTH)
                    & UserRow.password_hash.is_not(None)
                    & (UserRow.password_changed_at <= now - dt.timedelta(days=self.policy.max_age_days))
                )
            candidates = session.scalars(
                select(UserRow)
                .where(UserRow.status == "active")
                .where(
                    or_(
                        UserRow.published_locked.is_(False) & or_(*became_locked),
                        UserRow.published_locked.is_(True)
                        & or_(UserRow.expires_at.is_(None), UserRow.expires_at > now),
                    )
                )
            )
            changed = [row for row in candidates if self._publish_locked(row, now) != row.published_locked]
            if changed:
                self._audit(
                    session,
                    SYSTEM_ACTOR,
                    "directory.user.expiry_sweep",
                    "users",
                    {"logins": [row.login for row in changed[:100]], "count": len(changed)},
                )
            for row in changed:
                self._queue_user(session, row)
                queued += 1
        return queued

    # -- departments ------------------------------------------------------------------------

    @staticmethod
    def _sibling_key(parent_id: int | None, name: str) -> str:
        return f"{parent_id or 0}:{name.casefold()}"

    def _check_sibling_free(self, session: Session, parent_id: int | None, name: str, exclude: int | None) -> None:
        existing = session.scalar(
            select(DepartmentRow).where(DepartmentRow.sibling_key == self._sibling_key(parent_id, name))
        )
        if existing is not None and existing.id != exclude:
            raise DuplicateDepartment(
                f"department {existing.code!r} with the name {name!r} already exists at that place in the tree",
                detail_zh=f"同一上级部门下已存在名为 {name!r} 的部门",
                department=existing.code,
            )

    def create_department(
        self,
        actor: str,
        *,
        code: str,
        name: str,
        parent: str | None = None,
        description: str | None = None,
        source: str = "",
    ) -> Department:
        """Create a department (under ``parent``, a department code, or at the top).

        Raises ``DuplicateDepartment``, ``DepartmentNotFound`` (parent) or ``InvalidDirectoryValue``.
        """
        code = department_code(code)
        name = text_value(name, "name", max_length=200)
        description = optional_text(description, "description", max_length=2000)
        now = self.clock()
        with self._transaction() as session:
            if session.scalar(select(DepartmentRow.id).where(DepartmentRow.code == code)) is not None:
                raise DuplicateDepartment(
                    f"a department with code {code!r} exists", detail_zh=f"部门代码 {code!r} 已存在", department=code
                )
            parent_row = self._department_row(session, parent) if parent else None
            parent_id = parent_row.id if parent_row is not None else None
            if parent_row is not None and len(self._ancestors(session, parent_row)) >= MAX_DEPARTMENT_DEPTH:
                raise InvalidDirectoryValue(f"departments may be nested at most {MAX_DEPARTMENT_DEPTH} deep")
            self._check_sibling_free(session, parent_id, name, None)
            row = DepartmentRow(
                code=code,
                name=name,
                parent_id=parent_id,
                sibling_key=self._sibling_key(parent_id, name),
                description=description,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            self._flush(session, lambda: DuplicateDepartment(f"department {code!r} or its name exists"))
            value = self._department_value(session, row)
            self._audit(
                session,
                actor,
                "directory.department.create",
                f"department:{code}",
                {"name": name, "parent": parent, "path": list(value.path)},
                source=source,
            )
            self._queue_department(session, row)
        return value

    def update_department(
        self,
        actor: str,
        code: str,
        *,
        name: str = UNSET,
        parent: str | None = UNSET,
        description: str | None = UNSET,
        source: str = "",
    ) -> Department:
        """Rename, move (``parent``: a code, or None for the top) or describe a department.

        A move under the department itself or one of its descendants raises
        ``DepartmentCycle``; a sibling with the same name ``DuplicateDepartment``.
        """
        now = self.clock()
        with self._transaction() as session:
            row = self._department_row(session, code)
            old_path = tuple(d.name for d in self._ancestors(session, row))
            changes: dict[str, Any] = {}
            new_name = row.name if name is UNSET else text_value(name, "name", max_length=200)
            new_parent_id = row.parent_id
            if parent is not UNSET:
                if parent is None:
                    new_parent_id = None
                else:
                    parent_row = self._department_row(session, parent)
                    if any(d.id == row.id for d in self._ancestors(session, parent_row)):
                        raise DepartmentCycle(
                            f"cannot move department {code!r} under {parent!r}: {parent!r} is {code!r} itself "
                            "or one of its sub-departments",
                            detail_zh=f"不能将部门 {code!r} 移到其自身或其下级部门 {parent!r} 之下",
                            department=code,
                            parent=parent,
                        )
                    new_parent_id = parent_row.id
                if new_parent_id != row.parent_id:
                    changes["parent"] = parent
            if new_name != row.name:
                changes["name"] = new_name
            if new_name != row.name or new_parent_id != row.parent_id:
                self._check_sibling_free(session, new_parent_id, new_name, row.id)
            if description is not UNSET:
                cleaned = optional_text(description, "description", max_length=2000)
                if cleaned != row.description:
                    row.description = cleaned
                    changes["description"] = cleaned
            if not changes:
                return self._department_value(session, row)
            row.name, row.parent_id = new_name, new_parent_id
            row.sibling_key = self._sibling_key(new_parent_id, new_name)
            row.updated_at = now
            self._flush(session, lambda: DuplicateDepartment(f"a department named {new_name!r} exists there"))
            value = self._department_value(session, row)
            moved = value.path != old_path
            self._audit(
                session,
                actor,
                "directory.department.move" if moved else "directory.department.update",
                f"department:{code}",
                {**changes, "old_path": list(old_path), "path": list(value.path)},
                source=source,
            )
            if moved:
                self._enqueue(
                    session,
                    "department",
                    "/".join(old_path),
                    "move",
                    {"old_path": list(old_path), "new_path": list(value.path)},
                )
            if "description" in changes:
                self._queue_department(session, row)
        return value

    def delete_department(self, actor: str, code: str, *, source: str = "") -> None:
        """Delete a department that has no sub-departments, users or scoped role assignments."""
        with self._transaction() as session:
            row = self._department_row(session, code)
            blockers = {
                "departments": session.scalar(
                    select(func.count()).select_from(DepartmentRow).where(DepartmentRow.parent_id == row.id)
                ),
                "users": session.scalar(
                    select(func.count()).select_from(UserRow).where(UserRow.department_id == row.id)
                ),
                "role_assignments": session.scalar(
                    select(func.count()).select_from(RoleAssignmentRow).where(RoleAssignmentRow.department_id == row.id)
                ),
            }
            if any(blockers.values()):
                raise DepartmentNotEmpty(
                    f"department {code!r} still has {', '.join(f'{v} {k}' for k, v in blockers.items() if v)}",
                    detail_zh=f"部门 {code!r} 仍有下级部门、用户或角色授权",
                    **{k: int(v or 0) for k, v in blockers.items()},
                )
            path = tuple(d.name for d in self._ancestors(session, row))
            session.delete(row)
            self._audit(
                session, actor, "directory.department.delete", f"department:{code}", {"path": list(path)}, source=source
            )
            self._enqueue(session, "department", "/".join(path), "delete", {"path": list(path)})

    def get_department(self, code: str) -> Department:
        with self._read() as session:
            return self._department_value(session, self._department_row(session, code))

    def list_departments(
        self, *, parent: str | None = None, q: str | None = None, after: str | None = None, limit: int = 50
    ) -> list[Department]:
        """Departments ordered by code (``after``: the last code of the previous page)."""
        with self._read() as session:
            query = select(DepartmentRow).order_by(DepartmentRow.code).limit(limit)
            if parent is not None:
                query = query.where(DepartmentRow.parent_id == self._department_row(session, parent).id)
            if q:
                query = query.where(
                    or_(
                        DepartmentRow.name.icontains(q, autoescape=True),
                        DepartmentRow.code.icontains(q, autoescape=True),
                    )
                )
            if after is not None:
                query = query.where(DepartmentRow.code > after)
            return [self._department_value(session, row) for row in session.scalars(query)]

    # -- users ------------------------------------------------------------------------------

    def _check_new_password(self, login: str, password: str, old_hashes: Iterable[str]) -> str:
        """Check the policy and the history (outside any transaction); return the new hash."""
        self.policy.check(password, login=login)
        for old in old_hashes:
            if self.hasher.matches(old, password):
                raise PasswordPolicyViolation(
                    f"the password must differ from the current one and the last {self.policy.history} passwords",
                    detail_zh=f"新密码不能与当前密码及最近 {self.policy.history} 个密码相同",
                    rule="history",
                    history=self.policy.history,
                )
        return self.hasher.hash(password)

    def create_user(
        self,
        actor: str,
        *,
        login: str,
        display_name: str,
        given_name: str | None = None,
        surname: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        department: str | None = None,
        kind: str = "person",
        expires_at: dt.datetime | None = None,
        auth_source: str = LOCAL_AUTH,
        external_dn: str | None = None,
        password: str | None = None,
        source: str = "",
    ) -> User:
        """Create a user or service account (``kind="service"``), optionally with a first password.

        Raises ``DuplicateLogin``, ``DepartmentNotFound``, ``InvalidEmail``,
        ``InvalidPhone``, ``InvalidLogin``, ``PasswordPolicyViolation``,
        ``FederationNotConfigured`` or ``InvalidUserState`` (a password for a
        user authenticated elsewhere).  Nothing is stored when any check fails.
        """
        login = normalize_login(login)
        fields = self._clean_user_fields(
            display_name=display_name, given_name=given_name, surname=surname, email=email, phone=phone
        )
        if kind not in USER_KINDS:
            raise InvalidDirectoryValue(f"kind must be one of {', '.join(USER_KINDS)}", field="kind")
        auth_source = check_auth_source(auth_source, self._federation_names())
        expires_at = _aware(expires_at, "expires_at")
        password_hash = None
        if password is not None:
            if auth_source != LOCAL_AUTH:
                raise InvalidUserState(
                    "a user authenticated by an external directory has no password in Hengxin",
                    detail_zh="由外部目录认证的用户在恒信中没有密码",
                )
            password_hash = self._check_new_password(login, password, ())
        now = self.clock()
        with self._transaction() as session:
            if session.scalar(select(UserRow.id).where(UserRow.login == login)) is not None:
                raise DuplicateLogin(
                    f"the login {login!r} is taken", detail_zh=f"登录名 {login!r} 已被使用", login=login
                )
            department_row = self._department_row(session, department) if department else None
            row = UserRow(
                login=login,
                kind=kind,
                department_id=department_row.id if department_row is not None else None,
                status="active",
                expires_at=expires_at,
                auth_source=auth_source,
                external_dn=optional_text(external_dn, "external_dn", max_length=1000),
                password_hash=password_hash,
                password_changed_at=now if password_hash else None,
                failed_logins=0,
                lockout_count=0,
                published_locked=False,
                created_at=now,
                updated_at=now,
                **fields,
            )
            session.add(row)
            self._flush(session, lambda: DuplicateLogin(f"the login {login!r} is taken", login=login))
            self._audit(
                session,
                actor,
                "directory.user.create",
                f"user:{login}",
                {
                    "kind": kind,
                    "display_name": row.display_name,
                    "department": department,
                    "auth_source": auth_source,
                    "password_set": password_hash is not None,
                    "expires_at": isoformat_utc(expires_at) if expires_at else None,
                },
                source=source,
            )
            self._queue_user(session, row)
            return self._user_value(session, row, now, certificates=0)

    def _clean_user_fields(self, **values: Any) -> dict[str, Any]:
        cleaned: dict[str, Any] = {}
        for field, value in values.items():
            if value is UNSET:
                continue
            if field == "display_name":
                cleaned[field] = text_value(value or "", "display_name", max_length=200)
            elif field in _USER_TEXT_FIELDS:
                cleaned[field] = optional_text(value, field, max_length=_USER_TEXT_FIELDS[field])
            elif field == "email":
                cleaned[field] = email_address(value)
            elif field == "phone":
                cleaned[field] = phone_number(value)
        return cleaned

    def _federation_names(self) -> set[str]:
        return self.federation.names() if self.federation is not None else set()

    def update_user(
        self,
        actor: str,
        login: str,
        *,
        display_name: str = UNSET,
        given_name: str | None = UNSET,
        surname: str | None = UNSET,
        email: str | None = UNSET,
        phone: str | None = UNSET,
        department: str | None = UNSET,
        expires_at: dt.datetime | None = UNSET,
        auth_source: str = UNSET,
        source: str = "",
    ) -> User:
        """Change a user's attributes; fields left out stay, None clears an optional one."""
        fields = self._clean_user_fields(
            display_name=display_name, given_name=given_name, surname=surname, email=email, phone=phone
        )
        if expires_at is not UNSET:
            fields["expires_at"] = _aware(expires_at, "expires_at")
        if auth_source is not UNSET:
            fields["auth_source"] = check_auth_source(auth_source, self._federation_names())
        now = self.clock()
        with self._transaction() as session:
            row = self._user_row(session, login, for_update=True)
            if department is not UNSET:
                fields["department_id"] = self._department_row(session, department).id if department else None
            changed = {name: value for name, value in fields.items() if getattr(row, name) != value}
            if not changed:
                return self._user_value(session, row, now)
            for name, value in changed.items():
                setattr(row, name, value)
            if changed.get("auth_source", LOCAL_AUTH) != LOCAL_AUTH:
                row.password_hash = None  # the external directory checks the password from now on
            row.updated_at = now
            details = {name: _jsonable(value) for name, value in changed.items() if name != "department_id"}
            if "department_id" in changed:
                details["department"] = department
            self._audit(session, actor, "directory.user.update", f"user:{row.login}", details, source=source)
            self._queue_user(session, row)
            return self._user_value(session, row, now)

    def get_user(self, login: str) -> User:
        """The user ``login`` as administrators see it; raises ``UserNotFound``."""
        now = self.clock()
        with self._read() as session:
            return self._user_value(session, self._user_row(session, login), now)

    def list_users(
        self,
        *,
        department: str | None = None,
        include_subdepartments: bool = False,
        status: str | None = None,
        kind: str | None = None,
        q: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> list[User]:
        """Users ordered by login; ``q`` matches login, display name and email (case-insensitive)."""
        if status is not None and status not in USER_STATUSES:
            raise InvalidDirectoryValue(f"status must be one of {', '.join(USER_STATUSES)}", field="status")
        if kind is not None and kind not in USER_KINDS:
            raise InvalidDirectoryValue(f"kind must be one of {', '.join(USER_KINDS)}", field="kind")
        now = self.clock()
        with self._read() as session:
            query = select(UserRow).order_by(UserRow.login).limit(limit)
            if department is not None:
                department_row = self._department_row(session, department)
                if include_subdepartments:
                    ids = self._descendant_ids(session, department_row.id)
                    query = query.where(UserRow.department_id.in_(ids))
                else:
                    query = query.where(UserRow.department_id == department_row.id)
            if status is not None:
                query = query.where(UserRow.status == status)
            if kind is not None:
                query = query.where(UserRow.kind == kind)
            if q:
                query = query.where(
                    or_(
                        UserRow.login.icontains(q, autoescape=True),
                        UserRow.display_name.icontains(q, autoescape=True),
                        UserRow.email.icontains(q, autoescape=True),
                    )
                )
            if after is not None:
                query = query.where(UserRow.login > after)
            rows = list(session.scalars(query))
            counts = dict(
                session.execute(
                    select(UserCertificateRow.user_id, func.count())
                    .where(UserCertificateRow.user_id.in_([r.id for r in rows]))
                    .group_by(UserCertificateRow.user_id)
                ).all()
            )
            return [self._user_value(session, row, now, certificates=counts.get(row.id, 0)) for row in rows]

    def _set_status(
        self,
        actor: str,
        login: str,
        action: str,
        change: Callable[[UserRow, dt.datetime], dict[str, Any] | None],
        *,
        reason: str | None = None,
        source: str = "",
    ) -> User:
        now = self.clock()
        with self._transaction() as session:
            row = self._user_row(session, login, for_update=True)
            details = change(row, now)
            if details is None:  # nothing to do: already in that state
                return self._user_value(session, row, now)
            row.updated_at = now
            if reason:
                details["reason"] = reason
            self._audit(session, actor, action, f"user:{row.login}", details, source=source)
            self._queue_user(session, row)
            user = self._user_value(session, row, now)
        for callback in self._status_listeners:
            callback(user, actor)  # after the commit; a listener's failure is the caller's to see
        return user

    def lock_user(self, actor: str, login: str, *, reason: str | None = None, source: str = "") -> User:
        """Lock an account (until unlocked); LDAP binds fail from the next publication.

        Raises ``InvalidUserState`` for a disabled account.
        """

        def change(row: UserRow, now: dt.datetime) -> dict[str, Any] | None:
            if row.status == "locked":
                return None
            if row.status == "disabled":
                raise InvalidUserState("the account is disabled; enable it first", detail_zh="账户已停用，请先启用")
            row.status, row.lock_reason = "locked", "administrator"
            return {"status": "locked"}

        return self._set_status(actor, login, "directory.user.lock", change, reason=reason, source=source)

    def unlock_user(self, actor: str, login: str, *, reason: str | None = None, source: str = "") -> User:
        """Lift a lock (by an administrator or by lockout) and clear the failure counters.

        Raises ``InvalidUserState`` for a disabled account (use :meth:`enable_user`).
        """

        def change(row: UserRow, now: dt.datetime) -> dict[str, Any] | None:
            if row.status == "disabled":
                raise InvalidUserState("the account is disabled; enable it instead", detail_zh="账户已停用，请改用启用")
            temporarily = row.locked_until is not None and row.locked_until > now
            if row.status == "active" and not temporarily and not row.failed_logins and not row.lockout_count:
                return None
            details = {"previous_status": row.status, "lock_reason": row.lock_reason, "temporary": temporarily}
            row.status, row.lock_reason = "active", None
            row.failed_logins, row.failure_window_start, row.locked_until, row.lockout_count = 0, None, None, 0
            return details

        return self._set_status(actor, login, "directory.user.unlock", change, reason=reason, source=source)

    def disable_user(self, actor: str, login: str, *, reason: str | None = None, source: str = "") -> User:
        """Disable an account (a leaver); it keeps its data and history but cannot log in or bind."""

        def change(row: UserRow, now: dt.datetime) -> dict[str, Any] | None:
            if row.status == "disabled":
                return None
            details = {"previous_status": row.status}
            row.status, row.lock_reason = "disabled", None
            return details

        return self._set_status(actor, login, "directory.user.disable", change, reason=reason, source=source)

    def enable_user(self, actor: str, login: str, *, reason: str | None = None, source: str = "") -> User:
        """Re-enable a disabled account (it becomes active)."""

        def change(row: UserRow, now: dt.datetime) -> dict[str, Any] | None:
            if row.status != "disabled":
                return None
            row.status = "active"
            row.failed_logins, row.failure_window_start, row.locked_until, row.lockout_count = 0, None, None, 0
            return {"previous_status": "disabled"}

        return self._set_status(actor, login, "directory.user.enable", change, reason=reason, source=source)

    def set_password(self, actor: str, login: str, password: str, *, source: str = "") -> User:
        """Set a user's password (policy and history enforced) and publish the new hash.

        The previous hash goes to the history.  Raises ``UserNotFound``,
        ``PasswordPolicyViolation`` (``rule`` names the rule) or
        ``InvalidUserState`` for a user authenticated by an external directory.
        """
        with self._transaction() as session:
            row = self._user_row(session, login)
            if row.auth_source != LOCAL_AUTH:
                raise InvalidUserState(
                    f"{row.login!r} is authenticated by {row.auth_source}; change the password there",
                    detail_zh=f"{row.login!r} 由 {row.auth_source} 认证，请在该目录中修改密码",
                )
            user_id, normalized = row.id, row.login
            old_hashes = [row.password_hash] if row.password_hash else []
            old_hashes += list(
                session.scalars(
                    select(PasswordHistoryRow.password_hash)
                    .where(PasswordHistoryRow.user_id == row.id)
                    .order_by(PasswordHistoryRow.id.desc())
                    .limit(self.policy.history)
                )
            )
        new_hash = self._check_new_password(normalized, password, old_hashes)
        now = self.clock()
        with self._transaction() as session:
            row = self._user_row(session, normalized, for_update=True)
            if row.id != user_id:  # pragma: no cover - logins are never reused while we hash
                raise UserNotFound(f"no user with login {login!r}")
            if row.password_hash:
                session.add(PasswordHistoryRow(user_id=row.id, password_hash=row.password_hash, created_at=now))
                session.flush()
                self._trim_history(session, row.id)
            row.password_hash, row.password_changed_at = new_hash, now
            row.failed_logins, row.failure_window_start, row.locked_until = 0, None, None
            row.updated_at = now
            self._audit(
                session,
                actor,
                "directory.user.password_set",
                f"user:{row.login}",
                {"self_service": actor == f"user:{row.login}"},
                source=source,
            )
            self._queue_user(session, row)
            return self._user_value(session, row, now)

    def _trim_history(self, session: Session, user_id: int) -> None:
        keep = session.scalars(
            select(PasswordHistoryRow.id)
            .where(PasswordHistoryRow.user_id == user_id)
            .order_by(PasswordHistoryRow.id.desc())
            .limit(max(self.policy.history, 0))
        ).all()
        session.execute(
            delete(PasswordHistoryRow).where(
                PasswordHistoryRow.user_id == user_id, PasswordHistoryRow.id.not_in(keep or [-1])
            )
        )

    def change_password(self, login: str, old_password: str, new_password: str, *, source_address: str = "") -> User:
        """Self-service: the user proves the old password (an expired one is accepted) and sets a new one.

        Raises ``InvalidCredentials`` like :meth:`authenticate`, then what
        :meth:`set_password` raises.
        """
        user = self.authenticate(login, old_password, source_address, allow_expired_password=True)
        return self.set_password(f"user:{user.login}", user.login, new_password, source=source_address)

    def set_user_certificates(
        self, login: str, certificates: Iterable[bytes], *, actor: str = SYSTEM_ACTOR, source: str = ""
    ) -> User:
        """Replace the certificates published for ``login`` (DER, as ``userCertificate;binary``).

        The hook the CA calls (through ``api/``) after issuing or revoking a
        user's certificate.  Raises ``UserNotFound`` or ``InvalidDirectoryValue``
        for something that is not a DER certificate.
        """
        ders = [bytes(c) for c in certificates]
        serials = []
        for der in ders:
            try:
                serials.append(format(x509.load_der_x509_certificate(der).serial_number, "x"))
            except ValueError:
                raise InvalidDirectoryValue("a certificate is not DER-encoded X.509", field="certificates") from None
        now = self.clock()
        with self._transaction() as session:
            row = self._user_row(session, login, for_update=True)
            session.execute(delete(UserCertificateRow).where(UserCertificateRow.user_id == row.id))
            for der in ders:
                session.add(UserCertificateRow(user_id=row.id, certificate_der=der, added_at=now))
            row.updated_at = now
            session.flush()
            self._audit(
                session,
                actor,
                "directory.user.certificates_set",
                f"user:{row.login}",
                {"serials": serials},
                source=source,
            )
            self._queue_user(session, row)
            return self._user_value(session, row, now, certificates=len(ders))

    # -- authentication ---------------------------------------------------------------------

    def authenticate(
        self, login: str, password: str, source_address: str = "", *, allow_expired_password: bool = False
    ) -> User:
        """Check a login and password; return the user, or raise ``InvalidCredentials``.

        The same as :meth:`authenticate_within` returning the user as administrators see it.
        """
        return self.authenticate_within(
            login,
            password,
            source_address,
            lambda session, account: (
                self._user_value(session, self._user_by_id(session, account.id), self.clock()),
                (),
            ),
            allow_expired_password=allow_expired_password,
        )

    def authenticate_within(
        self,
        login: str,
        password: str,
        source_address: str,
        then: Callable[[Session, Account], tuple[T, Sequence[AuditEvent]]],
        *,
        allow_expired_password: bool = False,
    ) -> T:
        """Check a login and password; on success return what ``then`` returns, else raise ``InvalidCredentials``.

        ``then(session, account)`` runs inside the transaction that records the success (counters reset, audit
        record), with the account that passed, so a caller that writes more for a login (a session, tokens) commits it
        together with the success: one transaction, one commit.  It returns its result and the audit events to
        record after the directory's own ``directory.authenticate`` record, in the same append.  If ``then``
        raises, nothing is committed.

        Every failure (unknown login, wrong password, locked, disabled or
        expired account, blocked source address, unreachable external
        directory) raises the same ``InvalidCredentials`` after one password
        verification: an unknown login is verified against a dummy hash of the
        same cost.  The reason is in the audit record (action
        ``directory.authenticate``, outcome ``failure``, ``details.reason``).

        Wrong passwords count per account and per ``source_address`` and lock
        them as ``[passwords]`` says.  A right password that is older than
        ``max_age_days`` raises ``PasswordExpired`` (only someone who knows it
        learns that) unless ``allow_expired_password``.  A hash made with
        other argon2 parameters is replaced on success.
        """
        now = self.clock()
        source = (source_address or "unknown")[:100]
        try:
            normalized: str | None = normalize_login(login)
        except InvalidDirectoryValue:
            normalized = None
        with self._read() as session:
            found = session.execute(_LOGIN_SNAPSHOT, {"login": normalized}).first() if normalized else None
            snapshot = _LoginSnapshot(*found) if found is not None else None
            source_blocked = _after(session.scalar(_SOURCE_BLOCKED_UNTIL, {"address": source}), now)

        verified, reason = False, None
        if source_blocked or snapshot is None or (snapshot.auth_source == LOCAL_AUTH and not snapshot.password_hash):
            self.hasher.matches(self.hasher.dummy_hash(), password)
            if source_blocked:
                reason = "source_blocked"
            elif snapshot is None:
                reason = "unknown_user"
        elif snapshot.auth_source != LOCAL_AUTH:
            verified, reason = self._authenticate_elsewhere(snapshot, password)
        else:
            assert snapshot.password_hash is not None
            verified = self.hasher.matches(snapshot.password_hash, password)
        if reason is None and snapshot is not None:
            reason = self._refusal(snapshot, verified, now)

        new_hash = None
        if reason is None and snapshot is not None and snapshot.auth_source == LOCAL_AUTH:
            assert snapshot.password_hash is not None
            if self.hasher.needs_rehash(snapshot.password_hash):
                new_hash = self.hasher.hash(password)
        if reason is None and snapshot is not None:
            return self._login_succeeded(snapshot, new_hash, source, allow_expired_password, then)
        self._login_failed(normalized or login[:100], snapshot, reason or "wrong_password", source)
        raise InvalidCredentials()

    def _authenticate_elsewhere(self, snapshot: _LoginSnapshot, password: str) -> tuple[bool, str | None]:
        name = snapshot.auth_source.removeprefix("ldap:")
        if self.federation is None:
            return False, "federation_unavailable"
        try:
            self.federation.authenticate(name, snapshot.login, password)
            return True, None
        except LDAPInvalidCredentials:
            return False, None
        except DirectoryError as e:
            log.warning("external directory %s could not check a password", name, extra={"code": e.code})
            if self.alerts is not None:
                self.alerts.raise_alert(
                    "directory.federation_unavailable",
                    "warning",
                    f"external directory {name!r} could not check a password ({e.code})",
                    directory=name,
                    code=e.code,
                )
            return False, "federation_unavailable"

    @staticmethod
    def _refusal(snapshot: _LoginSnapshot, verified: bool, now: dt.datetime) -> str | None:
        """Why a login with a checked password must still fail (checked after the hash, in this order)."""
        if snapshot.status == "disabled":
            return "account_disabled"
        if snapshot.status == "locked":
            return "account_locked"
        if _after(snapshot.locked_until, now):
            return "temporarily_locked"
        if snapshot.expires_at is not None and snapshot.expires_at <= now:
            return "account_expired"
        if verified:
            return None
        if snapshot.auth_source == LOCAL_AUTH and not snapshot.password_hash:
            return "no_password"
        return "wrong_password"

    def _login_succeeded(
        self,
        snapshot: _LoginSnapshot,
        new_hash: str | None,
        source: str,
        allow_expired_password: bool,
        then: Callable[[Session, Account], tuple[T, Sequence[AuditEvent]]],
    ) -> T:
        now = self.clock()
        password_expiry = self._password_expires_at(snapshot)
        expired_password = password_expiry is not None and password_expiry <= now
        refused = expired_password and not allow_expired_password
        outcome: list[T] = []
        with self._transaction() as session:
            # One guarded UPDATE resets the counters and takes the row lock: it matches no row when the password
            # or the status changed while the password was being checked, and then we refuse rather than guess.
            result = session.execute(
                _RECORD_SUCCESS,
                {
                    "user_id": snapshot.user_id,
                    "checked_hash": snapshot.password_hash,
                    "checked_status": snapshot.status,
                    "now": now,
                    "new_hash": new_hash if new_hash is not None else snapshot.password_hash,
                },
            )
            if getattr(result, "rowcount", 0) != 1:
                self._audit(
                    session,
                    f"user:{snapshot.login}",
                    "directory.authenticate",
                    f"user:{snapshot.login}",
                    {"reason": "changed_during_login"},
                    outcome="failure",
                    source=source,
                )
                raise_after = True
            else:
                raise_after = False
                details: dict[str, Any] = {"auth_source": snapshot.auth_source}
                if new_hash is not None:
                    details["rehashed"] = True
                if refused:
                    details["reason"] = "password_expired"
                events = [
                    AuditEvent(
                        actor=f"user:{snapshot.login}",
                        action="directory.authenticate",
                        target=f"user:{snapshot.login}"[:500],
                        outcome="failure" if refused else "success",
                        source=source[:100],
                        details=details,
                    )
                ]
                if new_hash is not None:
                    row = session.get(UserRow, snapshot.user_id)
                    assert row is not None
                    self._queue_user(session, row)
                if not refused:
                    value, more = then(session, Account(snapshot.user_id, snapshot.login, snapshot.kind))
                    outcome.append(value)
                    events.extend(more)
                # One append for the directory's record and the caller's: one chain-head read, one insert.
                self.audit.append_many(session, events)
        if raise_after:
            raise InvalidCredentials()
        if refused:
            raise PasswordExpired(
                "the password has expired: set a new one", detail_zh="密码已过期，请设置新密码", login=snapshot.login
            )
        return outcome[0]

    def _login_failed(self, attempted: str, snapshot: _LoginSnapshot | None, reason: str, source: str) -> None:
        now = self.clock()
        lockout = None
        source_now_blocked = False
        row: UserRow | None = None
        with self._transaction() as session:
            details: dict[str, Any] = {"reason": reason}
            if snapshot is not None and reason in ("wrong_password", "no_password"):
                row = session.scalar(select(UserRow).where(UserRow.id == snapshot.user_id).with_for_update())
                if row is not None:
                    counters, lockout = register_account_failure(
                        AccountCounters(
                            row.failed_logins, row.failure_window_start, row.locked_until, row.lockout_count
                        ),
                        now,
                        self.lockout,
                    )
                    row.failed_logins, row.failure_window_start = counters.failed_logins, counters.window_start
                    row.locked_until, row.lockout_count = counters.locked_until, counters.lockout_count
                    details["failed_logins"] = counters.failed_logins
                    if lockout == "permanent":
                        row.status, row.lock_reason = "locked", "lockout"
                    if lockout != "counted":
                        details["lockout"] = lockout
                        details["lockout_count"] = counters.lockout_count
            if reason != "source_blocked" and reason != "federation_unavailable":
                source_now_blocked = self._count_source_failure(session, source, now)
                if source_now_blocked:
                    details["source_blocked"] = True
            self._audit(
                session,
                f"user:{attempted}",
                "directory.authenticate",
                f"user:{attempted}",
                details,
                outcome="failure",
                source=source,
            )
            if lockout == "permanent" and row is not None:
                self._queue_user(session, row)
        if self.alerts is not None:
            if lockout == "permanent":
                self.alerts.raise_alert(
                    "directory.account_locked",
                    "warning",
                    f"account {attempted!r} locked after repeated failed logins",
                    login=attempted,
                    source=source,
                )
            if source_now_blocked:
                self.alerts.raise_alert(
                    "directory.source_blocked",
                    "warning",
                    f"source {source} blocked after repeated failed logins",
                    source=source,
                )

    def _count_source_failure(self, session: Session, address: str, now: dt.datetime) -> bool:
        dialect = session.get_bind().dialect.name
        values = {"address": address, "failures": 0, "window_start": now, "blocked_until": None}
        if dialect == "postgresql":
            session.execute(postgresql.insert(LoginSourceRow).values(**values).on_conflict_do_nothing())
        else:
            session.execute(sqlite.insert(LoginSourceRow).values(**values).on_conflict_do_nothing())
        row = session.scalar(select(LoginSourceRow).where(LoginSourceRow.address == address).with_for_update())
        assert row is not None
        counters, blocked = register_source_failure(
            SourceCounters(row.failures, row.window_start, row.blocked_until), now, self.lockout
        )
        row.failures = counters.failures
        row.window_start = counters.window_start or now
        row.blocked_until = counters.blocked_until
        return blocked

    def unblock_source(self, actor: str, address: str, *, source: str = "") -> bool:
        """Forget the failures of a source address (unblocking it); False if nothing was recorded."""
        with self._transaction() as session:
            row = session.get(LoginSourceRow, address)
            if row is None:
                return False
            session.delete(row)
            self._audit(session, actor, "directory.source.unblock", f"source:{address}", source=source)
        return True

    # -- groups ------------------------------------------------------------------------------

    def create_group(self, actor: str, *, name: str, description: str | None = None, source: str = "") -> Group:
        """Create an empty group (published as a ``groupOfNames`` listing itself as its only member)."""
        name = group_name(name)
        description = optional_text(description, "description", max_length=2000)
        now = self.clock()
        with self._transaction() as session:
            if session.scalar(select(GroupRow.id).where(GroupRow.name_key == name.casefold())) is not None:
                raise DuplicateGroup(f"a group named {name!r} exists", detail_zh=f"组 {name!r} 已存在", group=name)
            row = GroupRow(name=name, name_key=name.casefold(), description=description, created_at=now, updated_at=now)
            session.add(row)
            self._flush(session, lambda: DuplicateGroup(f"a group named {name!r} exists", group=name))
            self._audit(
                session, actor, "directory.group.create", f"group:{name}", {"description": description}, source=source
            )
            self._queue_group(session, row)
            return self._group_value(session, row)

    def update_group(self, actor: str, name: str, *, description: str | None = UNSET, source: str = "") -> Group:
        with self._transaction() as session:
            row = self._group_row(session, name)
            if description is not UNSET:
                cleaned = optional_text(description, "description", max_length=2000)
                if cleaned != row.description:
                    row.description, row.updated_at = cleaned, self.clock()
                    self._audit(
                        session,
                        actor,
                        "directory.group.update",
                        f"group:{row.name}",
                        {"description": cleaned},
                        source=source,
                    )
                    self._queue_group(session, row)
            return self._group_value(session, row)

    def delete_group(self, actor: str, name: str, *, source: str = "") -> None:
        with self._transaction() as session:
            row = self._group_row(session, name)
            members = self._group_members(session, row.id)
            session.execute(delete(GroupMemberRow).where(GroupMemberRow.group_id == row.id))
            session.delete(row)
            self._audit(
                session, actor, "directory.group.delete", f"group:{row.name}", {"members": list(members)}, source=source
            )
            self._enqueue(session, "group", row.name, "delete", {"name": row.name})

    def get_group(self, name: str) -> Group:
        with self._read() as session:
            return self._group_value(session, self._group_row(session, name))

    def list_groups(
        self, *, q: str | None = None, member: str | None = None, after: str | None = None, limit: int = 50
    ) -> list[Group]:
        """Groups ordered by name; ``member`` selects the groups of one login."""
        with self._read() as session:
            query = select(GroupRow).order_by(GroupRow.name).limit(limit)
            if q:
                query = query.where(GroupRow.name.icontains(q, autoescape=True))
            if member is not None:
                user = self._user_row(session, member)
                query = query.join(GroupMemberRow, GroupMemberRow.group_id == GroupRow.id).where(
                    GroupMemberRow.user_id == user.id
                )
            if after is not None:
                query = query.where(GroupRow.name > after)
            return [self._group_value(session, row) for row in session.scalars(query)]

    def add_group_member(self, actor: str, name: str, login: str, *, source: str = "") -> Group:
        """Add ``login`` to a group (nothing happens if it is a member already)."""
        with self._transaction() as session:
            row = self._group_row(session, name)
            user = self._user_row(session, login)
            if session.get(GroupMemberRow, (row.id, user.id)) is None:
                session.add(GroupMemberRow(group_id=row.id, user_id=user.id, added_at=self.clock()))
                session.flush()
                self._audit(
                    session,
                    actor,
                    "directory.group.member_add",
                    f"group:{row.name}",
                    {"login": user.login},
                    source=source,
                )
                self._queue_group(session, row)
            return self._group_value(session, row)

    def remove_group_member(self, actor: str, name: str, login: str, *, source: str = "") -> Group:
        """Remove ``login`` from a group; raises ``UserNotFound`` if it is not a member."""
        with self._transaction() as session:
            row = self._group_row(session, name)
            user = self._user_row(session, login)
            membership = session.get(GroupMemberRow, (row.id, user.id))
            if membership is None:
                raise UserNotFound(
                    f"{user.login!r} is not a member of {row.name!r}",
                    detail_zh=f"{user.login!r} 不是组 {row.name!r} 的成员",
                )
            session.delete(membership)
            session.flush()
            self._audit(
                session,
                actor,
                "directory.group.member_remove",
                f"group:{row.name}",
                {"login": user.login},
                source=source,
            )
            self._queue_group(session, row)
            return self._group_value(session, row)

    # -- roles --------------------------------------------------------------------------------

    def create_role(
        self,
        actor: str,
        *,
        name: str,
        permissions: Iterable[str] = (),
        display_name: str | None = None,
        description: str | None = None,
        source: str = "",
    ) -> Role:
        name = role_name(name)
        granted = sorted({permission_name(p) for p in permissions})
        display_name = optional_text(display_name, "display_name", max_length=200)
        description = optional_text(description, "description", max_length=2000)
        now = self.clock()
        with self._transaction() as session:
            if session.scalar(select(RoleRow.id).where(RoleRow.name == name)) is not None:
                raise DuplicateRole(f"a role named {name!r} exists", detail_zh=f"角色 {name!r} 已存在", role=name)
            row = RoleRow(name=name, display_name=display_name, description=description, created_at=now, updated_at=now)
            session.add(row)
            self._flush(session, lambda: DuplicateRole(f"a role named {name!r} exists", role=name))
            for permission in granted:
                session.add(RolePermissionRow(role_id=row.id, permission=permission))
            session.flush()
            self._audit(
                session,
                actor,
                "directory.role.create",
                f"role:{name}",
                {"permissions": granted, "display_name": display_name},
                source=source,
            )
            return self._role_value(session, row)

    def update_role(
        self,
        actor: str,
        name: str,
        *,
        permissions: Iterable[str] | None = None,
        display_name: str | None = UNSET,
        description: str | None = UNSET,
        source: str = "",
    ) -> Role:
        """Change a role; ``permissions`` (when given) replaces the whole set."""
        granted = sorted({permission_name(p) for p in permissions}) if permissions is not None else None
        with self._transaction() as session:
            row = self._role_row(session, name)
            changes: dict[str, Any] = {}
            if granted is not None:
                current = list(self._role_permissions(session, row.id))
                if current != granted:
                    session.execute(delete(RolePermissionRow).where(RolePermissionRow.role_id == row.id))
                    for permission in granted:
                        session.add(RolePermissionRow(role_id=row.id, permission=permission))
                    changes["permissions"] = granted
                    changes["previous_permissions"] = current
            if display_name is not UNSET:
                cleaned = optional_text(display_name, "display_name", max_length=200)
                if cleaned != row.display_name:
                    row.display_name = changes["display_name"] = cleaned
            if description is not UNSET:
                cleaned = optional_text(description, "description", max_length=2000)
                if cleaned != row.description:
                    row.description = changes["description"] = cleaned
            if changes:
                row.updated_at = self.clock()
                session.flush()
                self._audit(session, actor, "directory.role.update", f"role:{name}", changes, source=source)
            return self._role_value(session, row)

    def delete_role(self, actor: str, name: str, *, source: str = "") -> None:
        """Delete a role nobody holds; raises ``RoleInUse`` otherwise."""
        with self._transaction() as session:
            row = self._role_row(session, name)
            holders = session.scalar(
                select(func.count()).select_from(RoleAssignmentRow).where(RoleAssignmentRow.role_id == row.id)
            )
            if holders:
                raise RoleInUse(
                    f"role {name!r} is granted {holders} time(s); revoke it first",
                    detail_zh=f"角色 {name!r} 仍被授予 {holders} 次，请先撤销",
                    assignments=int(holders),
                )
            session.execute(delete(RolePermissionRow).where(RolePermissionRow.role_id == row.id))
            session.delete(row)
            self._audit(session, actor, "directory.role.delete", f"role:{name}", source=source)

    def get_role(self, name: str) -> Role:
        with self._read() as session:
            return self._role_value(session, self._role_row(session, name))

    def list_roles(self, *, q: str | None = None, after: str | None = None, limit: int = 50) -> list[Role]:
        with self._read() as session:
            query = select(RoleRow).order_by(RoleRow.name).limit(limit)
            if q:
                query = query.where(
                    or_(RoleRow.name.icontains(q, autoescape=True), RoleRow.display_name.icontains(q, autoescape=True))
                )
            if after is not None:
                query = query.where(RoleRow.name > after)
            return [self._role_value(session, row) for row in session.scalars(query)]

    def grant_role(
        self, actor: str, login: str, role: str, *, department: str | None = None, source: str = ""
    ) -> RoleAssignment:
        """Grant ``role`` to ``login`` everywhere, or within ``department``'s subtree (idempotent)."""
        with self._transaction() as session:
            user = self._user_row(session, login)
            role_row = self._role_row(session, role)
            department_row = self._department_row(session, department) if department else None
            key = _assignment_key(user.id, role_row.id, department_row.id if department_row else None)
            row = session.scalar(select(RoleAssignmentRow).where(RoleAssignmentRow.assignment_key == key))
            if row is None:
                for check in self._grant_checks:
                    check(session, user.id, user.login, role_row.name)
                row = RoleAssignmentRow(
                    user_id=user.id,
                    role_id=role_row.id,
                    department_id=department_row.id if department_row else None,
                    assignment_key=key,
                    granted_at=self.clock(),
                    granted_by=actor[:200],
                )
                session.add(row)
                session.flush()
                self._audit(
                    session,
                    actor,
                    "directory.role.grant",
                    f"user:{user.login}",
                    {"role": role_row.name, "department": department},
                    source=source,
                )
            return RoleAssignment(
                user.login,
                role_row.name,
                department,
                self._role_permissions(session, role_row.id),
                row.granted_at,
                row.granted_by,
            )

    def revoke_role(
        self, actor: str, login: str, role: str, *, department: str | None = None, source: str = ""
    ) -> None:
        """Revoke one grant; raises ``RoleAssignmentNotFound`` when the user does not hold it so scoped."""
        with self._transaction() as session:
            user = self._user_row(session, login)
            role_row = self._role_row(session, role)
            department_row = self._department_row(session, department) if department else None
            key = _assignment_key(user.id, role_row.id, department_row.id if department_row else None)
            row = session.scalar(select(RoleAssignmentRow).where(RoleAssignmentRow.assignment_key == key))
            if row is None:
                where = f" in {department!r}" if department else ""
                raise RoleAssignmentNotFound(
                    f"{user.login!r} does not hold role {role_row.name!r}{where}",
                    detail_zh=f"{user.login!r} 未被授予角色 {role_row.name!r}",
                )
            session.delete(row)
            self._audit(
                session,
                actor,
                "directory.role.revoke",
                f"user:{user.login}",
                {"role": role_row.name, "department": department},
                source=source,
            )

    def role_assignments(self, login: str) -> list[RoleAssignment]:
        """The roles ``login`` holds, with their scope and permissions (for the authorisation layer)."""
        with self._read() as session:
            user = self._user_row(session, login)
            return self.assignments_of(session, user.id, user.login)

    @staticmethod
    def assignments_of(session: Session, user_id: int, login: str) -> list[RoleAssignment]:
        """The role assignments of user ``user_id``, read inside ``session`` with one query.

        Ordered by role name, then by grant; permissions sorted.  The authorisation layer calls this on every
        request.
        """
        return DirectoryService.assignments_from(session.execute(ASSIGNMENTS, {"user_id": user_id}), login)

    @staticmethod
    def assignments_from(rows: Iterable[Any], login: str) -> list[RoleAssignment]:
        """The role assignments of ``login`` from the rows of :data:`ASSIGNMENTS`, however they were read."""
        assignments: list[RoleAssignment] = []
        current: int | None = None
        permissions: list[str] = []
        for assignment_id, role, department, granted_at, granted_by, permission in rows:
            if assignment_id != current:
                if assignments:
                    assignments[-1] = dataclasses.replace(assignments[-1], permissions=tuple(permissions))
                current, permissions = assignment_id, []
                assignments.append(RoleAssignment(login, role, department, (), granted_at, granted_by))
            if permission is not None:
                permissions.append(permission)
        if assignments:
            assignments[-1] = dataclasses.replace(assignments[-1], permissions=tuple(permissions))
        return assignments

    # -- certificate authorities ---------------------------------------------------------------

    def publish_ca(
        self,
        name: str,
        certificate: bytes,
        crl: bytes | None = None,
        *,
        actor: str = SYSTEM_ACTOR,
        session: Session | None = None,
    ) -> None:
        """Publish a CA certificate and its latest CRL (DER) as ``cn=<name>,ou=cas``.

        The CA component calls this (through ``api/``) when a CA is created
        or its CRL changes.  Pass ``session`` to make it part of the caller's
        transaction.  Raises ``InvalidDirectoryValue`` for values that are not
        a DER certificate or CRL.
        """
        name = text_value(name, "name", max_length=100)
        try:
            subject = x509.load_der_x509_certificate(certificate).subject.rfc4514_string()
            crl_number = None
            if crl is not None:
                parsed = x509.load_der_x509_crl(crl)
                try:
                    crl_number = parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
                except x509.ExtensionNotFound:
                    crl_number = None
        except ValueError:
            raise InvalidDirectoryValue("the CA certificate or CRL is not DER-encoded", field="certificate") from None
        if session is not None:
            self._publish_ca(session, name, certificate, crl, actor, subject, crl_number)
            return
        with self._transaction() as own:
            self._publish_ca(own, name, certificate, crl, actor, subject, crl_number)

    def _publish_ca(
        self,
        session: Session,
        name: str,
        certificate: bytes,
        crl: bytes | None,
        actor: str,
        subject: str,
        crl_number: int | None,
    ) -> None:
        now = self.clock()
        row = session.get(PublishedCARow, name)
        if row is None:
            session.add(PublishedCARow(name=name, certificate_der=certificate, crl_der=crl, updated_at=now))
        else:
            row.certificate_der, row.crl_der, row.updated_at = certificate, crl, now
        session.flush()
        self._audit(
            session,
            actor,
            "directory.ca.publish",
            f"ca:{name}",
            {"subject": subject, "crl_number": str(crl_number) if crl_number is not None else None},
        )
        self._enqueue(session, "ca", name, "upsert", ca_payload(PublishedCA(name, certificate, crl)))

    def unpublish_ca(self, name: str, *, actor: str = SYSTEM_ACTOR) -> None:
        with self._transaction() as session:
            row = session.get(PublishedCARow, name)
            if row is None:
                return
            session.delete(row)
            self._audit(session, actor, "directory.ca.unpublish", f"ca:{name}")
            self._enqueue(session, "ca", name, "delete", {"name": name})

    # -- import ------------------------------------------------------------------------------------

    def import_users(
        self,
        actor: str,
        content: ExternalDirectoryContent,
        *,
        federation: str | None = None,
        department: str | None = None,
        update_existing: bool = False,
        dry_run: bool = False,
        source_url: str = "",
    ) -> ImportReport:
        """Store users read from another directory (one transaction: all or nothing).

        With ``federation`` the users authenticate by bind to that configured
        directory (``auth_source = ldap:<name>``); otherwise they are local
        users without a password until one is set.  ``department`` (a code)
        places every user; without it a user goes to the department whose
        name equals the entry's department attribute, when exactly one does.
        Existing logins are skipped unless ``update_existing``.  Groups in
        ``content`` are created as needed and given the imported members.
        ``dry_run`` reports without storing.
        """
        auth_source = check_auth_source(f"ldap:{federation}", self._federation_names()) if federation else LOCAL_AUTH
        try:
            with self._transaction() as session:
                report = self._import(session, actor, content, auth_source, department, update_existing, source_url)
                report = dataclasses.replace(report, dry_run=dry_run)
                if dry_run:
                    raise _DryRun(report)
        except _DryRun as finished:
            return finished.report
        return report

    def _import(
        self,
        session: Session,
        actor: str,
        content: ExternalDirectoryContent,
        auth_source: str,
        department: str | None,
        update_existing: bool,
        source_url: str,
    ) -> ImportReport:
        now = self.clock()
        fixed_department = self._department_row(session, department).id if department else None
        by_name: dict[str, list[int]] = {}
        for known_id, known_name in session.execute(select(DepartmentRow.id, DepartmentRow.name)):
            by_name.setdefault(known_name.casefold(), []).append(known_id)
        outcomes: list[ImportedUserOutcome] = []
        imported_rows: dict[str, UserRow] = {}  # normalised DN -> row
        for imported in content.users:
            try:
                login = normalize_login(imported.login)
            except InvalidDirectoryValue:
                outcomes.append(ImportedUserOutcome(imported.login[:100], "skipped", "invalid login"))
                continue
            if any(o.login == login and o.outcome != "skipped" for o in outcomes):
                outcomes.append(ImportedUserOutcome(login, "skipped", "duplicate login in the source"))
                continue
            fields = _imported_fields(imported)
            department_id: int | None = fixed_department
            if department_id is None and imported.department:
                matches = by_name.get(imported.department.strip().casefold(), [])
                department_id = matches[0] if len(matches) == 1 else None
            row = session.scalar(select(UserRow).where(UserRow.login == login))
            if row is not None and not update_existing:
                outcomes.append(ImportedUserOutcome(login, "skipped", "login exists"))
                continue
            if row is None:
                row = UserRow(
                    login=login,
                    kind="person",
                    department_id=department_id,
                    status="active",
                    auth_source=auth_source,
                    external_dn=imported.dn[:1000],
                    failed_logins=0,
                    lockout_count=0,
                    published_locked=False,
                    created_at=now,
                    updated_at=now,
                    **fields,
                )
                session.add(row)
                outcome = "created"
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
                if department_id is not None:
                    row.department_id = department_id
                row.external_dn = imported.dn[:1000]
                if auth_source != LOCAL_AUTH:
                    row.auth_source, row.password_hash = auth_source, None
                row.updated_at = now
                outcome = "updated"
            session.flush()
            if imported.certificates:
                session.execute(delete(UserCertificateRow).where(UserCertificateRow.user_id == row.id))
                for der in imported.certificates:
                    session.add(UserCertificateRow(user_id=row.id, certificate_der=bytes(der), added_at=now))
            imported_rows[normalize_dn(imported.dn)] = row
            outcomes.append(ImportedUserOutcome(login, outcome))  # type: ignore[arg-type]

        groups_created: list[str] = []
        memberships = 0
        touched_groups: list[GroupRow] = []
        for group in content.groups:
            members = [imported_rows[normalize_dn(dn)] for dn in group.member_dns if normalize_dn(dn) in imported_rows]
            if not members:
                continue
            try:
                name = group_name(group.name)
            except InvalidDirectoryValue:
                continue
            group_row = session.scalar(select(GroupRow).where(GroupRow.name_key == name.casefold()))
            if group_row is None:
                group_row = GroupRow(name=name, name_key=name.casefold(), created_at=now, updated_at=now)
                session.add(group_row)
                session.flush()
                groups_created.append(name)
            for member in members:
                if session.get(GroupMemberRow, (group_row.id, member.id)) is None:
                    session.add(GroupMemberRow(group_id=group_row.id, user_id=member.id, added_at=now))
                    memberships += 1
            session.flush()
            touched_groups.append(group_row)

        report = ImportReport(tuple(outcomes), tuple(groups_created), memberships)
        self._audit(
            session,
            actor,
            "directory.import",
            source_url[:500] or "import",
            {
                "created": report.count("created"),
                "updated": report.count("updated"),
                "skipped": report.count("skipped"),
                "auth_source": auth_source,
                "groups_created": list(groups_created),
                "memberships_added": memberships,
            },
        )
        for row in imported_rows.values():
            self._queue_user(session, row)
        for group_row in touched_groups:
            self._queue_group(session, group_row)
        return report

    # -- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _flush(session: Session, conflict: Callable[[], DirectoryError]) -> None:
        """Flush; a unique constraint lost to a concurrent writer becomes ``conflict()``."""
        try:
            session.flush()
        except IntegrityError:
            raise conflict() from None


def _after(moment: dt.datetime | None, now: dt.datetime) -> bool:
    return moment is not None and moment > now


def _assignment_key(user_id: int, role_id: int, department_id: int | None) -> str:
    return f"{user_id}:{role_id}:{department_id or 0}"


def _aware(moment: dt.datetime | None, field: str) -> dt.datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise InvalidDirectoryValue(f"{field} must include a time zone", field=field)
    return moment.astimezone(dt.UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return isoformat_utc(value)
    return value


def _imported_fields(imported: Any) -> dict[str, Any]:
    """A user's stored fields from an imported entry; values our checks refuse are left out."""

    def safe(check: Callable[[], Any]) -> Any:
        try:
            return check()
        except InvalidDirectoryValue:
            return None

    display_name = safe(lambda: text_value(imported.display_name or "", "display_name", max_length=200))
    return {
        "display_name": display_name or imported.login[:200],
        "given_name": safe(lambda: optional_text(imported.given_name, "given_name", max_length=100)),
        "surname": safe(lambda: optional_text(imported.surname, "surname", max_length=100)),
        "email": safe(lambda: email_address(imported.email)),
        "phone": safe(lambda: phone_number(imported.phone)),
    }

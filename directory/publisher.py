"""The LDAP publisher: applies the outbox to OpenLDAP in order, and reconciles the whole tree on demand.

:meth:`DirectoryPublisher.publish_pending` takes the pending outbox rows in
``sequence`` order and applies each through :class:`directory.ldap.LDAPDirectory`,
deleting the row once LDAP has it.  It stops at the first row that fails, so
later changes never overtake earlier ones:

- the server is unreachable, refuses the sync identity or lacks rights
  (``LDAPUnavailable``, ``LDAPInvalidCredentials``, ``LDAPInsufficientAccess``,
  ``LDAPConfigurationError``): nothing is wrong with the change; the row
  stays pending and is retried on the next run, however long it takes;
- the server refuses the change itself (``LDAPError``, an invalid value): the
  row is retried too, and after ``max_attempts`` it is set aside (status
  ``failed``) so that the rest of the queue can proceed; ``hengxin directory
  sync --full`` repairs what it would have done.

Either way an alert is raised once per row when it has failed
``alert_after_attempts`` times, and again when a row is set aside.

Only one process publishes at a time: a lease in ``job_leases`` (the core
table) is taken for each run and released after it.

:meth:`DirectoryPublisher.sync_full` compares everything LDAP should hold
(built from the database) with what it holds, repairs the difference with
``LDAPDirectory.reconcile`` and clears the outbox rows the reconciliation
made obsolete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.alerts import AlertChannel
from core.clock import Clock, utc_now
from core.errors import HengxinError
from core.store import transaction
from core.store.models import JobLeaseRow
from directory.errors import (
    DirectoryError,
    LDAPConfigurationError,
    LDAPInsufficientAccess,
    LDAPInvalidCredentials,
    LDAPNotFound,
    LDAPUnavailable,
)
from directory.ldap import LDAPDirectory
from directory.ldap_mapping import PublishedCA, PublishedDepartment, PublishedGroup, PublishedUser
from directory.models import OutboxRow
from directory.outbox import (
    OutboxEntry,
    entry_of,
    published_ca,
    published_department,
    published_group,
    published_user,
)
from directory.service_errors import PublisherBusy

log = logging.getLogger("hengxin.directory.publisher")

LEASE_NAME = "directory.publisher"
# Failures that say nothing about the change: the server or our access to it.
ENVIRONMENT_ERRORS = (LDAPUnavailable, LDAPInvalidCredentials, LDAPInsufficientAccess, LDAPConfigurationError)

PublishedState = tuple[list[PublishedDepartment], list[PublishedUser], list[PublishedGroup], list[PublishedCA]]


@dataclasses.dataclass(frozen=True)
class PublishReport:
    applied: int = 0
    set_aside: int = 0
    pending: int = 0
    error: str | None = None  # code of the error that stopped the run
    busy: bool = False  # another process held the lease


@dataclasses.dataclass(frozen=True)
class SyncReport:
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    changed: tuple[str, ...]  # "dn: attribute, attribute"
    applied: bool
    cleared: int  # outbox rows made obsolete

    @property
    def in_sync(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def lines(self) -> list[str]:
        return (
            [f"missing {dn}" for dn in self.missing]
            + [f"extra {dn}" for dn in self.extra]
            + [f"changed {item}" for item in self.changed]
        )


@dataclasses.dataclass(frozen=True)
class OutboxStatus:
    pending: int
    failed: int
    oldest_pending_at: dt.datetime | None
    head: OutboxEntry | None  # the next change to apply
    failed_entries: tuple[OutboxEntry, ...]


class DirectoryPublisher:
    """Applies the directory outbox to one LDAP server.

    ``connect`` builds the adapter (bound as the sync identity); it is called
    once and the adapter reconnects by itself.  ``expected_state`` reads what
    LDAP should hold inside a session (``DirectoryService.published_state``).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connect: Callable[[], LDAPDirectory],
        expected_state: Callable[[Session], PublishedState],
        *,
        alerts: AlertChannel | None = None,
        clock: Clock = utc_now,
        batch_size: int = 200,
        alert_after_attempts: int = 5,
        max_attempts: int = 20,
        lease_seconds: float = 300.0,
    ) -> None:
        self.sessions = sessions
        self._connect = connect
        self.expected_state = expected_state
        self.alerts = alerts
        self.clock = clock
        self.batch_size = batch_size
        self.alert_after_attempts = alert_after_attempts
        self.max_attempts = max(max_attempts, 1)
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._directory: LDAPDirectory | None = None
        self._base_ready = False
        self._lock = threading.Lock()  # one run at a time in this process
        self._wake = threading.Event()

    # -- the adapter ------------------------------------------------------------------------

    def directory(self) -> LDAPDirectory:
        if self._directory is None:
            self._directory = self._connect()
        return self._directory

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
            self._directory = None

    # -- waking the background loop ---------------------------------------------------------

    def wake(self) -> None:
        """Ask the background loop to run now (called after a change commits)."""
        self._wake.set()

    def take_wake(self) -> bool:
        """True (once) when :meth:`wake` was called since the last time."""
        if self._wake.is_set():
            self._wake.clear()
            return True
        return False

    # -- the lease ---------------------------------------------------------------------------

    def _acquire_lease(self) -> bool:
        now = self.clock()
        try:
            with transaction(self.sessions) as session:
                row = session.scalar(select(JobLeaseRow).where(JobLeaseRow.name == LEASE_NAME).with_for_update())
                if row is None:
                    session.add(JobLeaseRow(name=LEASE_NAME, holder=self.holder, expires_at=now + self.lease))
                elif row.holder == self.holder or row.expires_at <= now:
                    row.holder, row.expires_at = self.holder, now + self.lease
                else:
                    return False
        except IntegrityError:  # another process inserted the lease first
            return False
        return True

    def _release_lease(self) -> None:
        with transaction(self.sessions) as session:
            session.execute(
                update(JobLeaseRow)
                .where(JobLeaseRow.name == LEASE_NAME, JobLeaseRow.holder == self.holder)
                .values(expires_at=self.clock() - dt.timedelta(seconds=1))
            )

    def _with_lease(self, wait_seconds: float) -> bool:
        deadline = time.monotonic() + wait_seconds
        while True:
            if self._acquire_lease():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    # -- publishing --------------------------------------------------------------------------

    def publish_pending(self, limit: int | None = None, *, wait_seconds: float = 0.0) -> PublishReport:
        """Apply pending changes in order until the queue is empty, ``limit`` is reached or one fails.

        Never raises for LDAP failures: they are recorded on the row, logged
        and alerted.  Returns what was done; ``busy`` when another process
        holds the publishing lease (after waiting up to ``wait_seconds``).
        """
        with self._lock:
            if not self._with_lease(wait_seconds):
                return PublishReport(busy=True, pending=self._count("pending"))
            try:
                return self._publish(limit if limit is not None else self.batch_size)
            finally:
                self._release_lease()

    def _publish(self, limit: int) -> PublishReport:
        applied = set_aside = 0
        error: str | None = None
        while applied + set_aside < limit:
            with transaction(self.sessions) as session:
                rows = session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.status == "pending")
                    .order_by(OutboxRow.sequence)
                    .limit(min(50, limit - applied - set_aside))
                ).all()
                entries = [entry_of(row) for row in rows]
            if not entries:
                break
            stopped = False
            for entry in entries:
                failure = self._apply_safely(entry)
                if failure is None:
                    with transaction(self.sessions) as session:
                        session.execute(delete(OutboxRow).where(OutboxRow.sequence == entry.sequence))
                    applied += 1
                    continue
                if self._record_failure(entry, failure):
                    set_aside += 1
                    continue
                error, stopped = failure.code, True
                break
            if stopped:
                break
        pending = self._count("pending")
        if applied or set_aside or error:
            log.info(
                "directory publish run",
                extra={"applied": applied, "set_aside": set_aside, "pending": pending, "code": error},
            )
        return PublishReport(applied, set_aside, pending, error)

    def _apply_safely(self, entry: OutboxEntry) -> HengxinError | None:
        try:
            directory = self.directory()
            if not self._base_ready:
                directory.ensure_base()
                self._base_ready = True
            self._apply(directory, entry)
            return None
        except HengxinError as e:
            if isinstance(e, LDAPNotFound):
                self._base_ready = False  # the tree may have been wiped: recreate the containers next time
            return e
        except Exception as e:  # a bug must not stop publishing silently
            log.exception("applying directory change %s failed", entry.sequence)
            return DirectoryError(f"unexpected {type(e).__name__} while applying change {entry.sequence}")

    @staticmethod
    def _apply(directory: LDAPDirectory, entry: OutboxEntry) -> None:
        payload = entry.payload
        match (entry.entity, entry.operation):
            case ("user", "upsert"):
                directory.upsert_user(published_user(payload))
            case ("user", "delete"):
                directory.delete_user(payload["login"])
            case ("department", "upsert"):
                directory.upsert_department(published_department(payload))
            case ("department", "move"):
                old, new = tuple(payload["old_path"]), tuple(payload["new_path"])
                try:
                    directory.move_department(old, new)
                except LDAPNotFound:
                    # Already moved (a replay after a full sync): done if the new place exists.
                    if directory.read_entry(directory.layout.department_dn(new)) is None:
                        raise
            case ("department", "delete"):
                directory.delete_department(tuple(payload["path"]))
            case ("group", "upsert"):
                directory.upsert_group(published_group(payload))
            case ("group", "delete"):
                directory.delete_group(payload["name"])
            case ("ca", "upsert"):
                directory.upsert_ca(published_ca(payload))
            case ("ca", "delete"):
                directory.delete_ca(payload["name"])
            case _:
                raise DirectoryError(f"unknown outbox change {entry.entity}/{entry.operation}")

    def _record_failure(self, entry: OutboxEntry, error: HengxinError) -> bool:
        """Count a failed attempt; True when the row was set aside (failed) so the run may continue."""
        now = self.clock()
        attempts = entry.attempts + 1
        environment = isinstance(error, ENVIRONMENT_ERRORS)
        set_aside = not environment and attempts >= self.max_attempts
        alert_now = False
        with transaction(self.sessions) as session:
            row = session.get(OutboxRow, entry.sequence)
            if row is None:  # a full sync cleared it meanwhile
                return True
            row.attempts, row.last_attempt_at = attempts, now
            row.last_error = f"{error.code}: {error.detail}"[:2000]
            if attempts >= self.alert_after_attempts and not row.alerted:
                row.alerted = alert_now = True
            if set_aside:
                row.status = "failed"
        log.warning(
            "directory change %s (%s %s %s) failed, attempt %s",
            entry.sequence,
            entry.entity,
            entry.operation,
            entry.key,
            attempts,
            extra={"code": error.code},
        )
        if self.alerts is not None and (alert_now or set_aside):
            details = {
                "sequence": entry.sequence,
                "entity": entry.entity,
                "operation": entry.operation,
                "key": entry.key,
                "attempts": attempts,
                "code": error.code,
            }
            if set_aside:
                self.alerts.raise_alert(
                    "directory.publish_failed",
                    "critical",
                    f"LDAP refused directory change {entry.sequence} ({entry.entity} {entry.key}) {attempts} times; "
                    "it was set aside: run `hengxin directory sync --full`",
                    **details,
                )
            else:
                self.alerts.raise_alert(
                    "directory.publish_stuck",
                    "critical",
                    f"directory change {entry.sequence} ({entry.entity} {entry.key}) has failed {attempts} times "
                    f"({error.code}); later changes wait behind it",
                    **details,
                )
        return set_aside

    # -- full reconciliation -----------------------------------------------------------------

    def sync_full(self, *, apply: bool = True, wait_seconds: float = 30.0) -> SyncReport:
        """Make LDAP hold exactly what the database says (``apply=False``: only report the drift).

        Outbox rows older than the snapshot (pending or set aside) are
        obsolete afterwards and deleted.  Raises ``PublisherBusy`` when the
        lease is not free within ``wait_seconds``, and the adapter's errors
        (``LDAPUnavailable`` ...).
        """
        with self._lock:
            if not self._with_lease(wait_seconds):
                raise PublisherBusy(
                    "another process is publishing the directory; try again",
                    detail_zh="另一进程正在发布目录，请稍后重试",
                )
            try:
                return self._sync_full(apply)
            finally:
                self._release_lease()

    def _sync_full(self, apply: bool) -> SyncReport:
        with transaction(self.sessions) as session:
            high = session.scalar(select(func.max(OutboxRow.sequence))) or 0
            departments, users, groups, cas = self.expected_state(session)
        directory = self.directory()
        expected = directory.layout.expected_entries(departments=departments, users=users, groups=groups, cas=cas)
        if apply:
            directory.ensure_base()
            self._base_ready = True
        drift = directory.reconcile(expected, apply=apply)
        cleared = 0
        if apply:
            with transaction(self.sessions) as session:
                result: Any = session.execute(delete(OutboxRow).where(OutboxRow.sequence <= high))
                cleared = result.rowcount or 0
        return SyncReport(
            missing=tuple(e.dn for e in drift.missing),
            extra=tuple(e.dn for e in drift.extra),
            changed=tuple(f"{c.dn}: {', '.join(a.name for a in c.attributes)}" for c in drift.changed),
            applied=apply,
            cleared=cleared,
        )

    # -- status ------------------------------------------------------------------------------

    def _count(self, status: str) -> int:
        with transaction(self.sessions) as session:
            return session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == status)) or 0

    def status(self) -> OutboxStatus:
        with transaction(self.sessions) as session:
            pending = session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending"))
            head = session.scalar(
                select(OutboxRow).where(OutboxRow.status == "pending").order_by(OutboxRow.sequence).limit(1)
            )
            failed = session.scalars(
                select(OutboxRow).where(OutboxRow.status == "failed").order_by(OutboxRow.sequence).limit(100)
            ).all()
            failed_count = session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "failed")
            )
            return OutboxStatus(
                pending=pending or 0,
                failed=failed_count or 0,
                oldest_pending_at=head.created_at if head is not None else None,
                head=entry_of(head) if head is not None else None,
                failed_entries=tuple(entry_of(row) for row in failed),
            )

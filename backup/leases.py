"""Leases for backup jobs: one run of a job at a time, and each scheduled slot run once, across nodes.

Built on the generic helpers of :mod:`core.jobs` (rows of ``job_leases``):

* a **run claim** (:meth:`JobLeases.claim_run`) records, for a name such as
  ``backup-slot:nightly``, the key of the last scheduled run some node took.
  The claim takes the row's lease (a conditional ``UPDATE``: of several nodes
  reaching the same slot, one changes the row and the others wait for its
  commit, then see it taken), accepts the key only if it sorts after the one
  recorded (keys are ISO 8601 UTC times, so a late node cannot run an older
  slot either), and gives the lease back at once;
* a **lease** (:meth:`JobLeases.acquire`) is a mutex with an expiry, taken
  under a holder name unique to that one acquisition, so it excludes other
  runs in the same process as well as on other nodes.  The holder renews it
  while it works (:class:`LeaseKeeper`) and releases it at the end; a node
  that dies stops renewing, so after ``ttl`` another node may take over.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, utc_now
from core.jobs import acquire_lease, release_lease
from core.store import transaction
from core.store.models import JobLeaseRow

logger = logging.getLogger("hengxin.backup.leases")

_CLAIM_TTL = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Lease:
    """A lease held until ``expires_at`` (unless renewed) under the unique ``holder`` name."""

    name: str
    holder: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class LeaseState:
    """What the table says about one name: who took it last, until when, and the last run key."""

    name: str
    holder: str
    expires_at: dt.datetime
    last_run_key: str

    def held(self, now: dt.datetime) -> bool:
        return self.expires_at > now


class JobLeases:
    """Run claims and leases for one node (``node``, e.g. ``"host-a:4242"``)."""

    def __init__(self, sessions: sessionmaker[Session], node: str, *, clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.node = node
        self.clock = clock

    def claim_run(self, name: str, run_key: str) -> bool:
        """Record that this node takes the run ``run_key`` of ``name``; False if it (or a later one) is taken."""
        if not run_key:
            raise ValueError("a run key is required")
        now = self.clock()
        with transaction(self.sessions) as session:
            if not acquire_lease(session, name, self.node, _CLAIM_TTL, now=now):
                return False
            done = session.execute(select(JobLeaseRow.last_run_key).where(JobLeaseRow.name == name)).scalar_one()
            claimed = done < run_key
            if claimed:
                session.execute(
                    update(JobLeaseRow)
                    .where(JobLeaseRow.name == name)
                    .values(last_run_key=run_key)
                    .execution_options(synchronize_session=False)
                )
            release_lease(session, name, self.node, now=now)
        logger.debug("run claim %s %s: %s", name, run_key, "taken" if claimed else "already taken")
        return claimed

    def acquire(self, name: str, ttl: dt.timedelta) -> Lease | None:
        """Take the lease ``name`` for ``ttl`` unless another holder's lease is still valid; None if it is."""
        holder = f"{self.node}/{secrets.token_hex(3)}"
        now = self.clock()
        with transaction(self.sessions) as session:
            taken = acquire_lease(session, name, holder, ttl, now=now)
        return Lease(name, holder, now + ttl) if taken else None

    def renew(self, lease: Lease, ttl: dt.timedelta) -> Lease | None:
        """Extend a lease; None if it was lost (expired and taken by another holder)."""
        now = self.clock()
        with transaction(self.sessions) as session:
            kept = acquire_lease(session, lease.name, lease.holder, ttl, now=now)
        if not kept:
            logger.warning("lease %s was lost", lease.name)
            return None
        return Lease(lease.name, lease.holder, now + ttl)

    def release(self, lease: Lease) -> None:
        """Give a lease back at once (the holder name stays, as "who ran it last")."""
        with transaction(self.sessions) as session:
            release_lease(session, lease.name, lease.holder, now=self.clock())

    def state(self, name: str) -> LeaseState | None:
        """The row for ``name``, or None when it was never used."""
        with transaction(self.sessions) as session:
            row = session.execute(select(JobLeaseRow).where(JobLeaseRow.name == name)).scalar_one_or_none()
            if row is None:
                return None
            return LeaseState(row.name, row.holder, row.expires_at, row.last_run_key)


class LeaseKeeper:
    """Renews a lease on a background thread every ``ttl / 3`` until :meth:`stop`.

    ``lost`` is set when a renewal failed because another node took the lease
    (this node was presumed dead); the work should then be treated as suspect.
    """

    def __init__(self, leases: JobLeases, lease: Lease, ttl: dt.timedelta) -> None:
        self._leases = leases
        self._lease = lease
        self._ttl = ttl
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.name}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        interval = max(1.0, self._ttl.total_seconds() / 3)
        while not self._stop.wait(interval):
            try:
                renewed = self._leases.renew(self._lease, self._ttl)
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the worker; retry next time
                logger.warning("could not renew lease %s; retrying", self._lease.name, exc_info=True)
                continue
            if renewed is None:
                self.lost.set()
                return
            self._lease = renewed

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._leases.release(self._lease)

"""Database leases: at most one node runs a given job at a time.

A lease is a row of ``job_leases`` (:class:`core.store.models.JobLeaseRow`)
naming its holder and when it expires.  A node takes a lease that is free,
expired or already its own, does the work, and releases it; a node that dies
holding a lease blocks the job only until the lease expires.  Every function
here works inside the caller's transaction, on SQLite and PostgreSQL alike:
the take is a single conditional UPDATE (or an INSERT inside a savepoint when
the row does not exist yet), so two nodes racing for a lease never both win.

``last_run_key`` lets a job run once per period across all nodes (for example
once a day: the key is the date), see :func:`claim_run`.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import utc_now
from core.store.models import JobLeaseRow


def lease_holder(prefix: str = "") -> str:
    """A holder name unique to this process: host, process id and a random suffix."""
    name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    return f"{prefix}{name}"[:200]


def acquire_lease(
    session: Session, name: str, holder: str, ttl: dt.timedelta, *, now: dt.datetime | None = None
) -> bool:
    """Take (or extend) the lease ``name`` for ``holder`` until ``now + ttl``; True when taken.

    The lease is taken when it does not exist, has expired, or is already
    held by ``holder``.  Commit the caller's transaction for the take to count.
    """
    now = now or utc_now()
    expires = now + ttl
    result = session.execute(
        update(JobLeaseRow)
        .where(JobLeaseRow.name == name, or_(JobLeaseRow.holder == holder, JobLeaseRow.expires_at <= now))
        .values(holder=holder, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return True
    if session.execute(select(JobLeaseRow.name).where(JobLeaseRow.name == name)).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.add(JobLeaseRow(name=name, holder=holder, expires_at=expires, last_run_key=""))
            session.flush()
    except IntegrityError:
        # Another node inserted the row first (PostgreSQL waits for its commit, then refuses ours).
        return False
    return True


def release_lease(session: Session, name: str, holder: str, *, now: dt.datetime | None = None) -> None:
    """Give the lease back (it expires now) if ``holder`` holds it; otherwise do nothing."""
    now = now or utc_now()
    session.execute(
        update(JobLeaseRow)
        .where(JobLeaseRow.name == name, JobLeaseRow.holder == holder)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


def claim_run(
    session: Session, name: str, holder: str, run_key: str, ttl: dt.timedelta, *, now: dt.datetime | None = None
) -> bool:
    """Take the lease ``name`` and record ``run_key`` as done, unless a node already ran it for ``run_key``.

    True means: the caller should do the run for ``run_key`` now.  A job that
    fails after claiming is not retried for the same key by other nodes; pass a
    finer key (the hour instead of the day) for jobs that must retry sooner.
    """
    if not acquire_lease(session, name, holder, ttl, now=now):
        return False
    done = session.execute(select(JobLeaseRow.last_run_key).where(JobLeaseRow.name == name)).scalar_one()
    if done == run_key:
        return False
    session.execute(
        update(JobLeaseRow)
        .where(JobLeaseRow.name == name)
        .values(last_run_key=run_key)
        .execution_options(synchronize_session=False)
    )
    return True

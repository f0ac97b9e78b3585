"""Run claims and leases on a real (SQLite) database with frozen clocks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backup.leases import JobLeases, LeaseKeeper
from core.clock import FrozenClock
from core.store import build_engine, migrate, session_factory

START = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.UTC)
TTL = dt.timedelta(minutes=10)


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = build_engine(f"sqlite:///{tmp_path / 'leases.db'}")
    migrate(engine)
    return session_factory(engine)


def test_a_run_key_is_claimed_once_and_only_later_keys_after_it(sessions: sessionmaker[Session]) -> None:
    clock = FrozenClock(START)
    first, second = JobLeases(sessions, "node-1", clock=clock), JobLeases(sessions, "node-2", clock=clock)

    assert first.claim_run("backup-slot:nightly", "2026-11-23T02:30:00.000000Z")
    assert not second.claim_run("backup-slot:nightly", "2026-11-23T02:30:00.000000Z")
    assert not first.claim_run("backup-slot:nightly", "2026-11-22T02:30:00.000000Z")  # an older slot
    assert second.claim_run("backup-slot:nightly", "2026-11-24T02:30:00.000000Z")
    state = first.state("backup-slot:nightly")
    assert state is not None and state.holder == "node-2" and state.last_run_key.startswith("2026-11-24")
    assert not state.held(clock())  # a claim gives its lease back at once
    assert first.claim_run("backup-slot:weekly", "2026-11-23T02:30:00.000000Z")  # names are independent


def test_a_lease_excludes_others_until_released_or_expired(sessions: sessionmaker[Session]) -> None:
    clock = FrozenClock(START)
    first, second = JobLeases(sessions, "node-1", clock=clock), JobLeases(sessions, "node-2", clock=clock)

    lease = first.acquire("backup:nightly", TTL)
    assert lease is not None and lease.expires_at == START + TTL
    assert second.acquire("backup:nightly", TTL) is None
    assert first.acquire("backup:nightly", TTL) is None  # not re-entrant either

    clock.advance(minutes=5)
    renewed = first.renew(lease, TTL)
    assert renewed is not None and renewed.expires_at == START + dt.timedelta(minutes=15)
    clock.advance(minutes=9)
    assert second.acquire("backup:nightly", TTL) is None  # renewed: still held
    first.release(renewed)
    taken = second.acquire("backup:nightly", TTL)
    assert taken is not None

    clock.advance(minutes=11)  # node-2 died without releasing: the lease expires
    stolen = first.acquire("backup:nightly", TTL)
    assert stolen is not None
    assert second.renew(taken, TTL) is None  # node-2 finds out it lost the lease
    assert first.state("backup:nightly").holder == stolen.holder  # type: ignore[union-attr]
    assert stolen.holder.startswith("node-1/")  # one holder name per acquisition


def test_the_keeper_renews_in_the_background_and_releases_at_the_end(sessions: sessionmaker[Session]) -> None:
    leases = JobLeases(sessions, "node-1")
    ttl = dt.timedelta(seconds=3)
    lease = leases.acquire("backup:nightly", ttl)
    assert lease is not None
    import time

    with LeaseKeeper(leases, lease, ttl) as keeper:
        time.sleep(1.3)
        state = leases.state("backup:nightly")
        assert state is not None and state.expires_at > lease.expires_at  # renewed after ttl/3 = 1 s
        assert not keeper.lost.is_set()
    assert JobLeases(sessions, "node-2").acquire("backup:nightly", ttl) is not None

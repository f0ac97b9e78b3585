"""PostgreSQL connections that die while pooled: at most one transaction fails, then the pool reconnects.

The pool pings a connection only when it was idle for ``PING_AFTER_IDLE_SECONDS`` (a ping per checkout would be
a round trip per transaction); these tests kill the server side of pooled connections with
``pg_terminate_backend``, as a database restart or failover does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

import core.store
from core.errors import DatabaseUnavailable
from core.store import build_engine, session_factory, transaction
from tests.fixtures.postgres import PostgresCluster


def _kill_connections(cluster: PostgresCluster, database: str) -> int:
    killed = cluster.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )
    return int(killed.strip())


def _count(sessions: sessionmaker[Session]) -> int:
    with transaction(sessions) as session:
        return int(session.execute(text("SELECT count(*) FROM items")).scalar_one())


@pytest.fixture
def pooled(postgres_cluster: PostgresCluster) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """(database name, sessions) on a new database with an empty ``items`` table."""
    database = postgres_cluster.create_database()
    engine = build_engine(postgres_cluster.url(database))
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        session.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY)"))
    yield database, sessions
    engine.dispose()


def test_a_connection_killed_while_recently_used_fails_once_then_the_pool_reconnects(
    postgres_cluster: PostgresCluster, pooled: tuple[str, sessionmaker[Session]]
) -> None:
    database, sessions = pooled
    with transaction(sessions) as session:
        session.execute(text("INSERT INTO items VALUES (1)"))
    assert _count(sessions) == 1
    assert _kill_connections(postgres_cluster, database) >= 1
    outcomes: list[object] = []
    for _ in range(3):
        try:
            outcomes.append(_count(sessions))
        except DatabaseUnavailable:
            outcomes.append("unavailable")
    assert outcomes.count("unavailable") <= 1, outcomes
    assert outcomes[-2:] == [1, 1]
    # Nothing was half-written by the failed transaction.
    with transaction(sessions) as session:
        session.execute(text("INSERT INTO items VALUES (2)"))
    assert _count(sessions) == 2


def test_an_idle_pooled_connection_is_pinged_and_replaced_without_a_failure(
    postgres_cluster: PostgresCluster, pooled: tuple[str, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, sessions = pooled
    monkeypatch.setattr(core.store, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle
    assert _kill_connections(postgres_cluster, database) >= 1
    assert _count(sessions) == 0  # the ping found the dead connection; a new one answered
    with transaction(sessions) as session:
        session.execute(text("INSERT INTO items VALUES (1)"))
    assert _count(sessions) == 1

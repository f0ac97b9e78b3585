"""read_transaction(): lookups read a snapshot without queueing behind writers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from core.store import build_engine, read_transaction, session_factory, transaction


@pytest.fixture
def sessions(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = build_engine(database_url or f"sqlite:///{tmp_path / 'read.db'}")
    factory = session_factory(engine)
    with transaction(factory) as session:
        session.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
        session.execute(text("INSERT INTO items (id, name) VALUES (1, 'first')"))
    yield factory
    engine.dispose()


def test_a_read_is_not_blocked_by_an_open_writer_and_sees_only_committed_rows(sessions) -> None:  # type: ignore[no-untyped-def]
    writing = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with transaction(sessions) as session:
            session.execute(text("INSERT INTO items (id, name) VALUES (2, 'second')"))
            writing.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(10)
        started = time.monotonic()
        with read_transaction(sessions) as session:
            names = session.execute(text("SELECT name FROM items ORDER BY id")).scalars().all()
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join(10)
    assert names == ["first"]
    assert waited < 5, f"the read waited {waited:.1f} s for the writer"
    with read_transaction(sessions) as session:
        assert session.execute(text("SELECT count(*) FROM items")).scalar_one() == 2


def test_a_write_inside_a_read_transaction_is_refused_on_postgresql(postgres_url: str) -> None:
    from sqlalchemy.exc import DBAPIError

    from core.errors import HengxinError

    engine = build_engine(postgres_url)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            session.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY)"))
        with pytest.raises((DBAPIError, HengxinError)), read_transaction(factory) as session:
            session.execute(text("INSERT INTO items (id) VALUES (1)"))
        # The pooled connection is writable again afterwards.
        with transaction(factory) as session:
            assert session.execute(text("SELECT count(*) FROM items")).scalar_one() == 0
            session.execute(text("INSERT INTO items (id) VALUES (1)"))
        with read_transaction(factory) as session:
            assert session.execute(text("SELECT count(*) FROM items")).scalar_one() == 1
    finally:
        engine.dispose()

"""read_transaction(): lookups read a snapshot without queueing behind writers."""

from __future__ import annotations

import gc
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


def test_the_sqlite_reader_sees_each_commit_at_once_and_refuses_writes(tmp_path: Path) -> None:
    from core.errors import DatabaseUnavailable
    from core.store import sqlite_reader

    engine = build_engine(f"sqlite:///{tmp_path / 'reader.db'}")
    factory = session_factory(engine)
    with transaction(factory) as session:
        session.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
    reader = sqlite_reader(engine)
    assert reader is not None
    try:
        assert reader.one("SELECT name FROM items WHERE id = ?", (1,)) is None
        with transaction(factory) as session:
            session.execute(text("INSERT INTO items (id, name) VALUES (1, 'first')"))
        assert reader.one("SELECT name FROM items WHERE id = ?", (1,)) == ("first",)  # no snapshot kept open
        with transaction(factory) as session:
            session.execute(text("UPDATE items SET name = 'renamed' WHERE id = 1"))
        assert reader.one("SELECT name FROM items WHERE id = ?", (1,)) == ("renamed",)
        with pytest.raises(DatabaseUnavailable):
            reader.one("DELETE FROM items")
        with pytest.raises(DatabaseUnavailable):
            reader.one("SELECT nothing FROM nowhere")
        # A reader on another thread gets its own connection and the same answers.
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append(reader.one("SELECT name FROM items WHERE id = 1")))
        thread.start()
        thread.join(10)
        assert seen == [("renamed",)]
        # A thread's connection goes with the thread: pools that retire threads do not pile up open files.
        for _ in range(5):
            worker = threading.Thread(target=lambda: reader.one("SELECT 1"))
            worker.start()
            worker.join(10)
        gc.collect()
        assert reader.open_connections == 1  # this thread's only
    finally:
        reader.close()
        engine.dispose()
    with pytest.raises(DatabaseUnavailable):
        reader.one("SELECT 1")
    with transaction(factory) as session:  # the rows are untouched by the refused write
        assert session.execute(text("SELECT name FROM items")).scalars().all() == ["renamed"]


def test_no_sqlite_reader_for_postgresql_or_memory() -> None:
    from sqlalchemy import create_engine

    from core.store import sqlite_reader

    assert sqlite_reader(create_engine("sqlite:///:memory:")) is None
    assert sqlite_reader(build_engine("postgresql+psycopg://u@127.0.0.1:1/x")) is None
    assert sqlite_reader(None) is None

"""The database: engine, sessions, types shared by every package, and migrations.

SQLite (WAL, synchronous=FULL) is the embedded default; PostgreSQL is reached
through psycopg 3.  Both run the same migrations and the same tests.

Every package declares its tables on :data:`Base` (one metadata) in its own
``models`` module and ships its own alembic migration folder as a branch; the
composition root (``api/``) passes the list of folders to :func:`migrate`.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, Select, String, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from core.errors import DatabaseUnavailable, StoreError

log = logging.getLogger("hengxin.store")

CORE_MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base for every Hengxin table."""


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on both SQLite and PostgreSQL.

    Naive datetimes are refused on the way in; values come back aware (UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store only timezone-aware UTC times")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class HexSerial(TypeDecorator[int]):
    """A certificate serial number (up to 160 bits) stored as lower-case hex text.

    Text keeps it exact on every database and makes a unique constraint cheap.
    """

    impl = String(42)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Any) -> str | None:
        return None if value is None else format(value, "x")

    def process_result_value(self, value: str | None, dialect: Any) -> int | None:
        return None if value is None else int(value, 16)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


READ_ONLY = "hengxin_read_only"


def _sqlite_begin(connection: Any) -> None:
    # Every writing transaction takes the write lock up front.  Read-then-write
    # transactions (the audit chain head, serial reservations) would otherwise
    # fail with SQLITE_BUSY when two writers race; this serialises them.
    # A transaction opened by read_transaction() only reads: in WAL mode a
    # deferred BEGIN reads a snapshot without taking any lock, so readers never
    # queue behind writers (or behind each other).
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN DEFERRED")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.  SQLAlchemy's
# pool_pre_ping pings on every checkout: a round trip per transaction, four per issued certificate.  A connection
# used a moment ago is alive unless the server went away in between; then its first statement fails
# (DatabaseUnavailable, 503), SQLAlchemy invalidates the pool, and the next transaction connects afresh.
PING_AFTER_IDLE_SECONDS = 10.0


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if time.monotonic() - record.info.get("checked_in", 0.0) < PING_AFTER_IDLE_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        # psycopg opened a transaction for the SELECT; end it so the caller's BEGIN starts a fresh one.
        dbapi_connection.rollback()
    except Exception as e:  # noqa: BLE001 - any failure means this connection is unusable
        log.info("a pooled database connection was dead; reconnecting", extra={"error": type(e).__name__})
        raise DisconnectionError("the pooled connection is dead") from e


def build_engine(url: str | URL, *, pool_size: int = 10, echo: bool = False, password: str | None = None) -> Engine:
    """Create an engine for ``url``; ``password`` is set on the URL object, never in the text."""
    parsed = make_url(url)
    if password is not None:
        parsed = parsed.set(password=password)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Enough pooled connections for the request thread pool: a connection opened beyond the pool is closed
        # after one use, and opening one costs its PRAGMAs.
        engine = create_engine(parsed, echo=echo, pool_size=pool_size, max_overflow=4 * pool_size,
                               connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed, echo=echo, pool_size=pool_size, max_overflow=pool_size)
        event.listen(engine, "checkin", _note_checkin)
        event.listen(engine, "checkout", _ping_if_idle)
        return engine
    raise StoreError(f"unsupported database URL scheme {parsed.get_backend_name()!r}: use sqlite or postgresql")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any error.

    Database connection failures become :class:`DatabaseUnavailable`.
    """
    session = sessions()
    try:
        with session.begin():
            yield session
    except OperationalError as e:
        raise DatabaseUnavailable("the database did not answer") from e
    finally:
        session.close()


@contextlib.contextmanager
def read_transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that only reads: one consistent snapshot, no write lock.

    On SQLite it begins DEFERRED (see ``_sqlite_begin``); on PostgreSQL it is a
    READ ONLY transaction, so an accidental write fails instead of committing.
    Use it for lookups on hot paths (token checks, OCSP status, listings).
    """
    session = sessions()
    try:
        with session.begin():
            session.connection(execution_options=_read_only_options(session.get_bind().dialect.name))
            yield session
    except OperationalError as e:
        raise DatabaseUnavailable("the database did not answer") from e
    finally:
        session.close()


def ping(engine: Engine) -> None:
    """Raise :class:`DatabaseUnavailable` unless the database answers ``SELECT 1``."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        raise DatabaseUnavailable("the database did not answer") from e


def migrate(engine: Engine, locations: Sequence[Path] = (), *, target: str = "heads") -> None:
    """Apply every migration (core and the given package folders) up to ``target``."""
    from alembic import command

    config = _alembic_config(engine, locations)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, target)


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        try:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        except SQLAlchemyError:
            return set()
    return {row[0] for row in rows}


def pending_migrations(engine: Engine, locations: Sequence[Path] = ()) -> list[str]:
    """Revisions not yet applied (empty when the schema is current)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(engine, locations))
    heads = set(script.get_heads())
    applied = current_revisions(engine)
    if heads <= applied:
        return []
    missing = []
    for revision in script.walk_revisions():
        if revision.revision not in applied:
            missing.append(revision.revision)
    applied_ancestors = set()
    for revision_id in applied:
        for revision in script.iterate_revisions(revision_id, "base"):
            applied_ancestors.add(revision.revision)
    return [r for r in missing if r not in applied_ancestors]


def _alembic_config(engine: Engine, locations: Sequence[Path]) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(CORE_MIGRATIONS))
    folders = [CORE_MIGRATIONS / "versions", *[Path(p) for p in locations]]
    config.set_main_option("version_locations", " ".join(str(f) for f in folders))
    config.set_main_option("path_separator", "space")
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=True))
    config.attributes["engine"] = engine
    return config


def _read_only_options(dialect: str) -> dict[str, Any]:
    options: dict[str, Any] = {READ_ONLY: True}
    if dialect == "postgresql":
        options["postgresql_readonly"] = True
    return options


class Prepared:
    """A Core SELECT compiled for SQLite once, with the bind and result conversions of its columns' types."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in (compiled.positiontup or ())
        ]
        columns = list(statement.selected_columns)
        self.results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self.row = collections.namedtuple("Row", list(statement.selected_columns.keys()))  # type: ignore[misc]


class _Held:
    """A thread's connection of a :class:`SQLiteReader` (sqlite3 connections cannot be weakly referenced)."""

    __slots__ = ("connection", "__weakref__")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __del__(self) -> None:
        self.connection.close()


class SQLiteReader:
    """Autocommit connections of its own to an SQLite database, one per thread, for the hottest lookups.

    Each statement is its own read transaction: it sees every transaction committed before it started, takes
    no lock (WAL) and costs a few microseconds, where a pooled SQLAlchemy connection with BEGIN and ROLLBACK
    costs tens.  ``PRAGMA query_only`` makes the connections refuse writes.  Statements are plain SQL with
    ``?`` parameters: callers convert values themselves (see :class:`HexSerial`, :class:`UTCDateTime`).
    """

    def __init__(self, path: str, dialect: Dialect) -> None:
        self.path = path
        self._dialect = dialect
        self._local = threading.local()
        self._lock = threading.Lock()
        # Held weakly: when a thread ends (worker pools retire idle threads), its thread-local holder goes, and
        # with it the connection, instead of piling up open files for the life of the process.
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            with self._lock:
                if self._closed:
                    raise DatabaseUnavailable("the database reader is closed")
                connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                connection.execute("PRAGMA query_only=ON")
                held = _Held(connection)
                self._held.add(held)
            self._local.held = held
        return held.connection

    @property
    def open_connections(self) -> int:
        """How many connections are open (one per live thread that used the reader)."""
        return len(self._held)

    def prepare(self, statement: Select[Any]) -> Prepared:
        """``statement`` compiled once for SQLite, to run with :meth:`rows`."""
        return Prepared(statement, self._dialect)

    def rows(self, prepared: Prepared, parameters: Mapping[str, Any]) -> list[Any]:
        """The rows of a prepared statement, converted by the columns' own types as SQLAlchemy converts them.

        Rows are named tuples (``row.login``).  Raises :class:`DatabaseUnavailable` when SQLite fails.
        """
        values = [
            process(parameters[name]) if process is not None else parameters[name]
            for name, process in prepared.binds
        ]
        try:
            raw = self._connection().execute(prepared.sql, values).fetchall()
        except sqlite3.Error as e:
            raise DatabaseUnavailable("the database did not answer") from e
        make, processors = prepared.row, prepared.results
        return [make(*(p(v) if p is not None else v for p, v in zip(processors, row, strict=True))) for row in raw]

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Statements inside read one consistent snapshot (a deferred read transaction, as ``read_transaction``)."""
        connection = self._connection()
        try:
            connection.execute("BEGIN DEFERRED")
        except sqlite3.Error as e:
            raise DatabaseUnavailable("the database did not answer") from e
        try:
            yield
        finally:
            connection.execute("ROLLBACK")

    def one(self, sql: str, parameters: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of ``sql``, or None.  Raises :class:`DatabaseUnavailable` when SQLite fails."""
        try:
            row: tuple[Any, ...] | None = self._connection().execute(sql, parameters).fetchone()
        except sqlite3.Error as e:
            raise DatabaseUnavailable("the database did not answer") from e
        return row

    def close(self) -> None:
        with self._lock:
            self._closed = True
            held = list(self._held)
        for item in held:
            item.connection.close()


def sqlite_reader(engine: Engine | None) -> SQLiteReader | None:
    """A :class:`SQLiteReader` of ``engine``'s database file; None for PostgreSQL or an in-memory database."""
    if engine is None or engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return SQLiteReader(database, engine.dialect)


def sqlite_datetime(value: str | None) -> dt.datetime | None:
    """A :class:`UTCDateTime` column's value as a :class:`SQLiteReader` row holds it (naive UTC text)."""
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def read_only_engine(sessions: sessionmaker[Session]) -> Engine | None:
    """The sessions' engine set up for lookups made of ONE statement (OCSP status, the issuing CA, API tokens).

    A plain connection of it costs about half of what a Session does.  On SQLite it opens a deferred (lock-free)
    read transaction, as ``read_transaction`` does.  On PostgreSQL it runs in autocommit mode: the statement is
    its own snapshot, one round trip instead of three (BEGIN, the statement, ROLLBACK).  Several statements that
    must see one snapshot belong in ``read_transaction``.  ``None`` when the sessions are not bound to one engine
    (then use ``read_transaction``).
    """
    engine = sessions.kw.get("bind")
    if not isinstance(engine, Engine):
        return None
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine.execution_options(**_read_only_options(engine.dialect.name))

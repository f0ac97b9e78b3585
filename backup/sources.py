"""Backup sources: small plugins that say what goes into a snapshot.

A source is anything with a ``name`` and a ``prepare(staging)`` method
(:class:`BackupSource`).  ``prepare`` gets an empty directory of its own,
writes whatever must be produced at backup time into it (a consistent
database copy, an export) and returns a :class:`SourceOutput`: the *roots* to
back up (its staging directory, existing paths, or both), plus what it wants
recorded in the manifest (row counts, the audit chain head, free-form
sections).  The backup service calls the sources of a job in order, builds one
manifest over all their roots and hands everything to restic in one snapshot.

Sources are registered at start-up by the composition root (``api/``) in a
:class:`SourceRegistry`, kept in ``platform.services["backup_sources"]``; this
package imports no domain package.  A component adds its own data like this::

    from backup.sources import CommandSource, SourceRegistry

    registry = platform.services.setdefault("backup_sources", SourceRegistry())
    registry.register(CommandSource("ldap", ["/usr/sbin/slapcat", "-n", "1"], "directory.ldif"))

The core sources are defined here: :class:`DatabaseSource` (SQLite online
backup API, or ``pg_dump -Fc``), :class:`KeyStoreSource`,
:class:`AuditSource`, :class:`ConfigSource` and :class:`PathsSource`; the two
generic adapters :class:`FileWriterSource` and :class:`CommandSource` let a
component plug in a callable or a command (``slapcat``) without writing a class.

Errors: a source raises :class:`backup.errors.SourceMissing` for a path that
does not exist, :class:`backup.errors.SourceFailed` when it cannot produce its
data, or another :class:`core.errors.HengxinError`; anything else it raises is
reported as ``backup.source_failed`` by the service.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backup.errors import BackupConfigurationError, SourceFailed, SourceMissing
from core.audit import AuditLog
from core.clock import isoformat_utc
from core.keys.base import KeyStore
from core.store import build_engine, transaction
from core.store.models import AuditCheckpointRow

logger = logging.getLogger("hengxin.backup.sources")

DEFAULT_COMMAND_TIMEOUT = 3600.0


@dataclass(frozen=True)
class SourceOutput:
    """What one source contributes to a snapshot.

    ``roots`` maps manifest root names (unique across the job's sources; by
    convention they start with the source's name) to absolute paths to back
    up.  ``row_counts`` (table -> rows), ``audit_head`` ((sequence, hash)) and
    ``sections`` (name -> JSON value) go into the manifest.
    """

    roots: Mapping[str, Path]
    row_counts: Mapping[str, int] = field(default_factory=dict)
    audit_head: tuple[int, str] | None = None
    sections: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class BackupSource(Protocol):
    """The plugin interface.  ``name`` is short and stable (``database``, ``ldap``): jobs list sources by it."""

    name: str

    def prepare(self, staging: Path) -> SourceOutput:
        """Write this source's data under ``staging`` (an empty directory of its own) and return the roots.

        Must leave the files it names unchanged until the backup is over.
        Raises :class:`SourceMissing`, :class:`SourceFailed` or another
        :class:`core.errors.HengxinError`.
        """
        ...


class SourceRegistry:
    """The sources known to this process, in registration order."""

    def __init__(self) -> None:
        self._sources: dict[str, BackupSource] = {}

    def register(self, source: BackupSource) -> None:
        """Add a source; raises :class:`BackupConfigurationError` for a duplicate or malformed one."""
        name = getattr(source, "name", "")
        if not isinstance(source, BackupSource) or not isinstance(name, str) or not name:
            raise BackupConfigurationError("a backup source needs a name and a prepare(staging) method")
        if "/" in name or name.startswith(".") or name != name.strip():
            raise BackupConfigurationError(f"invalid backup source name {name!r}")
        if name in self._sources:
            raise BackupConfigurationError(
                f"a backup source named {name!r} is already registered", detail_zh=f"备份源 {name!r} 已注册"
            )
        self._sources[name] = source

    def names(self) -> list[str]:
        return list(self._sources)

    def get(self, name: str) -> BackupSource:
        """The source registered as ``name``; raises :class:`BackupConfigurationError` if there is none."""
        return self.select([name])[0]

    def select(self, names: Sequence[str]) -> list[BackupSource]:
        """The named sources in the given order (every source when ``names`` is empty).

        Raises :class:`BackupConfigurationError` naming an unknown source.
        """
        if not names:
            return list(self._sources.values())
        unknown = [name for name in names if name not in self._sources]
        if unknown:
            raise BackupConfigurationError(
                f"unknown backup source {unknown[0]!r}; registered: {', '.join(self._sources) or 'none'}",
                detail_zh=f"未知的备份源 {unknown[0]!r}",
                source=unknown[0],
            )
        return [self._sources[name] for name in names]

    def __contains__(self, name: object) -> bool:
        return name in self._sources


# ---------------------------------------------------------------------------
# The database.


def find_pg_dump(configured: str = "") -> str:
    """The pg_dump to run: the configured one, else the newest server's, else the one on PATH."""
    if configured:
        return configured
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_dump"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    return shutil.which("pg_dump") or "pg_dump"


class DatabaseSource:
    """A consistent copy of the platform database, with the row count of every table.

    SQLite: a copy made with SQLite's online backup API (``hengxin.db``), a
    consistent snapshot even while the service writes.  PostgreSQL: a
    ``pg_dump -Fc`` archive (``hengxin.pgdump``) taken in an exported snapshot,
    and the row counts read in that same snapshot, so they match the archive
    exactly.  pg_dump reaches the server with ``PG*`` environment variables and
    the password in a temporary 0600 ``PGPASSFILE``: never in its arguments.
    """

    def __init__(
        self,
        url: str,
        *,
        password: Callable[[], str | None] = lambda: None,
        pg_dump_binary: str = "",
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        name: str = "database",
    ) -> None:
        self.name = name
        self.url = url
        self._password = password
        self.pg_dump_binary = pg_dump_binary
        self.timeout = timeout

    def prepare(self, staging: Path) -> SourceOutput:
        parsed = make_url(self.url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            return self._sqlite(parsed, staging)
        if backend == "postgresql":
            return self._postgresql(parsed, staging)
        raise BackupConfigurationError(f"cannot back up a {backend} database")

    # -- SQLite -----------------------------------------------------------------

    def _sqlite(self, url: URL, staging: Path) -> SourceOutput:
        database = url.database
        if not database or database == ":memory:":
            raise BackupConfigurationError("an in-memory SQLite database cannot be backed up")
        source_path = Path(database)
        if not source_path.exists():
            raise SourceMissing(
                f"database file {source_path} does not exist", detail_zh="数据库文件不存在", path=str(source_path)
            )
        target = staging / source_path.name
        try:
            source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
            try:
                copy = sqlite3.connect(target)
                try:
                    source.backup(copy)
                    # The copy is a plain file: no -wal/-shm companions when it is opened later.
                    copy.execute("PRAGMA journal_mode=DELETE")
                    check = copy.execute("PRAGMA quick_check").fetchone()
                    if check is None or check[0] != "ok":
                        raise SourceFailed(
                            f"the database copy fails SQLite's quick_check: {check[0] if check else 'no answer'}",
                            detail_zh="数据库副本未通过 SQLite 完整性检查",
                            source=self.name,
                        )
                    tables = [
                        row[0]
                        for row in copy.execute(
                            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                            "ORDER BY name"
                        )
                    ]
                    counts = {table: int(copy.execute(_count_query(table)).fetchone()[0]) for table in tables}
                finally:
                    copy.close()
            finally:
                source.close()
        except sqlite3.Error as e:
            raise SourceFailed(
                f"the SQLite online backup failed: {e}", detail_zh="SQLite 在线备份失败", source=self.name
            ) from e
        return SourceOutput(
            roots={self.name: staging},
            row_counts=counts,
            sections={self.name: {"dialect": "sqlite", "file": target.name, "tables": len(counts)}},
        )

    # -- PostgreSQL ---------------------------------------------------------------

    def _postgresql(self, url: URL, staging: Path) -> SourceOutput:
        password = self._password()
        engine = build_engine(url, pool_size=1, password=password)
        target = staging / "hengxin.pgdump"
        try:
            with engine.connect() as connection:
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
                with connection.begin():
                    connection.execute(text("SET TRANSACTION READ ONLY"))
                    snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                    server_version = connection.execute(text("SHOW server_version")).scalar_one()
                    tables = list(
                        connection.execute(
                            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
                        ).scalars()
                    )
                    counts = {
                        table: int(connection.execute(text(_count_query(table))).scalar_one()) for table in tables
                    }
                    # pg_dump must attach to the snapshot while this transaction is still open.
                    self._run_pg_dump(url, password, snapshot, target)
        except SQLAlchemyError as e:
            raise SourceFailed(
                f"cannot read the PostgreSQL database: {type(e).__name__}",
                detail_zh="无法读取 PostgreSQL 数据库",
                source=self.name,
            ) from e
        finally:
            engine.dispose()
        return SourceOutput(
            roots={self.name: staging},
            row_counts=counts,
            sections={
                self.name: {
                    "dialect": "postgresql",
                    "file": target.name,
                    "format": "pg_dump custom (-Fc)",
                    "server_version": str(server_version),
                    "tables": len(counts),
                }
            },
        )

    def _run_pg_dump(self, url: URL, password: str | None, snapshot: str, target: Path) -> None:
        binary = find_pg_dump(self.pg_dump_binary)
        env = {
            "PATH": os.environ.get("PATH") or "/usr/bin:/bin",
            "LANG": "C",
            "LC_ALL": "C",
            "PGHOST": url.host or "",
            "PGPORT": str(url.port or 5432),
            "PGUSER": url.username or "",
            "PGDATABASE": url.database or "",
            "PGCONNECT_TIMEOUT": "30",
        }
        for option, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
            value = url.query.get(option)
            if isinstance(value, str):
                env[variable] = value
        args = [binary, "--format=custom", "--no-password", f"--snapshot={snapshot}", f"--file={target}"]
        with _passfile(url, password) as passfile:
            if passfile is not None:
                env["PGPASSFILE"] = str(passfile)
            try:
                completed = subprocess.run(
                    args, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=self.timeout, check=False
                )
            except FileNotFoundError as e:
                raise SourceFailed(
                    f"pg_dump is not installed ({binary}): install the postgresql-client package",
                    detail_zh="未安装 pg_dump",
                    source=self.name,
                ) from e
            except subprocess.TimeoutExpired as e:
                raise SourceFailed(
                    f"pg_dump did not finish within {self.timeout:g} s", detail_zh="pg_dump 超时", source=self.name
                ) from e
        if completed.returncode != 0:
            message = completed.stderr.decode("utf-8", "replace").strip().splitlines()
            last = message[-1] if message else f"exit code {completed.returncode}"
            if password:
                last = last.replace(password, "***")
            raise SourceFailed(f"pg_dump failed: {last}", detail_zh="pg_dump 执行失败", source=self.name)


@contextlib.contextmanager
def _passfile(url: URL, password: str | None) -> Iterator[Path | None]:
    """A temporary 0600 ``.pgpass`` file holding ``password`` for ``url``; removed afterwards."""
    if not password:
        yield None
        return

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    line = ":".join(escape(v) for v in ("*", "*", "*", url.username or "*", password)) + "\n"
    descriptor, name = tempfile.mkstemp(prefix="hengxin-pgpass-")
    path = Path(name)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(line)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _count_query(table: str) -> str:
    """``SELECT count(*)`` of a table named by the database's own catalogue, quoted as an identifier."""
    quoted = table.replace('"', '""')
    return f'SELECT count(*) FROM "{quoted}"'  # noqa: S608 - an identifier from the catalogue, quoted


# ---------------------------------------------------------------------------
# Keys, audit, configuration, extra paths.


class KeyStoreSource:
    """The key store as it is: sealed key files are already encrypted, so they are backed up unchanged.

    For the file backend the key directory (``keys``) is a root.  For every
    backend an inventory of the public key information (``keys-inventory``:
    id, label, algorithm, fingerprint, public key) is written, so a restore
    can check that the keys an HSM or Vault holds are the expected ones.
    """

    def __init__(self, keystore: KeyStore, directory: Path | None, *, name: str = "keys") -> None:
        self.name = name
        self.keystore = keystore
        self.directory = directory

    def prepare(self, staging: Path) -> SourceOutput:
        import base64

        inventory = [
            {
                "key_id": info.key_id,
                "label": info.label,
                "algorithm": info.algorithm.value,
                "backend": info.backend,
                "created_at": isoformat_utc(info.created_at),
                "fingerprint": info.fingerprint,
                "public_key_der": base64.b64encode(info.public_key_der).decode("ascii"),
            }
            for info in self.keystore.list_keys()
        ]
        (staging / "key-inventory.json").write_text(json.dumps(inventory, indent=2, sort_keys=True) + "\n")
        roots: dict[str, Path] = {f"{self.name}-inventory": staging}
        if self.directory is not None:
            if not self.directory.exists():
                raise SourceMissing(
                    f"key directory {self.directory} does not exist",
                    detail_zh="密钥目录不存在",
                    path=str(self.directory),
                )
            roots[self.name] = self.directory
        return SourceOutput(
            roots=roots, sections={self.name: {"backend": self.keystore.backend, "keys": len(inventory)}}
        )


class AuditSource:
    """The audit log: a fresh signed checkpoint, every record as JSON lines, and the pruned segments.

    Writes ``audit.jsonl`` (the export format of ``hengxin audit export``) and
    ``checkpoint.json`` (the newest signed checkpoint), and names the
    directory of exported, pruned segments when it exists.  The manifest gets
    the chain head of the export: the sequence and hash of its last record.
    """

    def __init__(
        self,
        audit: AuditLog,
        sessions: sessionmaker[Session],
        *,
        segments_dir: Path | None = None,
        name: str = "audit",
    ) -> None:
        self.name = name
        self.audit = audit
        self.sessions = sessions
        self.segments_dir = segments_dir

    def prepare(self, staging: Path) -> SourceOutput:
        with transaction(self.sessions) as session:
            self.audit.checkpoint(session)
        records = 0
        last: tuple[int, str] | None = None
        with transaction(self.sessions) as session:
            with (staging / "audit.jsonl").open("w", encoding="utf-8") as handle:
                for line in self.audit.export(session):
                    handle.write(line + "\n")
                    records += 1
                    document = json.loads(line)
                    last = (int(document["record"]["sequence"]), str(document["record_hash"]))
            if last is None:
                last = self.audit.head(session)
            row = session.execute(
                select(AuditCheckpointRow).order_by(AuditCheckpointRow.id.desc()).limit(1)
            ).scalar_one_or_none()
            checkpoint = {"canonical": row.canonical, "signature": row.signature} if row is not None else None
        (staging / "checkpoint.json").write_text(
            json.dumps({"type": "hengxin.audit.checkpoint", **checkpoint} if checkpoint else None) + "\n"
        )
        roots: dict[str, Path] = {self.name: staging}
        if self.segments_dir is not None and self.segments_dir.exists():
            roots[f"{self.name}-segments"] = self.segments_dir
        checkpoint_sequence = json.loads(checkpoint["canonical"])["sequence"] if checkpoint else None
        return SourceOutput(
            roots=roots,
            audit_head=last,
            sections={self.name: {"records": records, "checkpoint_sequence": checkpoint_sequence}},
        )


class ConfigSource:
    """The configuration file as it is, plus the effective settings (file and environment merged) as JSON.

    Settings hold only the *names* of secrets; a password written into a URL
    anyway (``postgresql://user:pw@host/db``) is masked in the JSON.
    """

    def __init__(self, config_path: Path | None, effective: Callable[[], Mapping[str, Any]], *, name: str = "config"):
        self.name = name
        self.config_path = config_path
        self.effective = effective

    def prepare(self, staging: Path) -> SourceOutput:
        (staging / "effective-settings.json").write_text(
            json.dumps(_mask_url_passwords(self.effective()), indent=2, sort_keys=True, ensure_ascii=False, default=str)
            + "\n",
            encoding="utf-8",
        )
        roots: dict[str, Path] = {f"{self.name}-effective": staging}
        if self.config_path is not None:
            if not self.config_path.exists():
                raise SourceMissing(
                    f"configuration file {self.config_path} does not exist",
                    detail_zh="配置文件不存在",
                    path=str(self.config_path),
                )
            roots[self.name] = self.config_path
        return SourceOutput(roots=roots)


def _mask_url_passwords(value: Any) -> Any:
    """Replace the password of every ``scheme://user:password@host`` URL in a JSON-like value by ``***``."""
    if isinstance(value, str):
        return re.sub(r"(://[^/@\s:]*):[^/@\s]*@", r"\1:***@", value)
    if isinstance(value, Mapping):
        return {key: _mask_url_passwords(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_url_passwords(item) for item in value]
    return value


class PathsSource:
    """Configured extra paths, backed up as they are.  A missing path fails the backup."""

    def __init__(self, paths: Sequence[Path], *, name: str = "paths") -> None:
        self.name = name
        self.paths = [Path(p) for p in paths]

    def prepare(self, staging: Path) -> SourceOutput:
        roots: dict[str, Path] = {}
        for number, path in enumerate(self.paths, start=1):
            if not os.path.lexists(path):
                raise SourceMissing(
                    f"backup source {path} does not exist", detail_zh=f"备份源 {path} 不存在", path=str(path)
                )
            roots[f"{self.name}-{number}-{path.name or 'root'}"] = path
        return SourceOutput(roots=roots, sections={self.name: [str(p) for p in self.paths]} if self.paths else {})


# ---------------------------------------------------------------------------
# Generic adapters for plugins.


class FileWriterSource:
    """A source made from a callable that writes one file, e.g. an LDIF export through python-ldap.

    ``write(path)`` creates ``path``; what it returns (a JSON-serialisable
    mapping, e.g. ``{"entries": 1234}``) becomes the manifest section named
    after the source.
    """

    def __init__(self, name: str, filename: str, write: Callable[[Path], Mapping[str, Any] | None]) -> None:
        if "/" in filename or filename in ("", ".", ".."):
            raise BackupConfigurationError(f"invalid file name {filename!r} for backup source {name!r}")
        self.name = name
        self.filename = filename
        self.write = write

    def prepare(self, staging: Path) -> SourceOutput:
        target = staging / self.filename
        result = self.write(target)
        if not target.exists():
            raise SourceFailed(
                f"backup source {self.name!r} did not write {self.filename}",
                detail_zh=f"备份源 {self.name!r} 未生成文件",
                source=self.name,
            )
        return SourceOutput(roots={self.name: staging}, sections={self.name: dict(result)} if result else {})


class CommandSource:
    """A source made from a command whose standard output is the data, e.g. ``slapcat -n 1`` for OpenLDAP.

    ``argv`` is run without a shell, with a small fixed environment (plus
    ``env``), and its stdout is written to ``filename``.  A non-zero exit or
    a timeout raises :class:`SourceFailed` with the last line of stderr.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        filename: str,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        if not argv:
            raise BackupConfigurationError(f"backup source {name!r} has an empty command")
        if "/" in filename or filename in ("", ".", ".."):
            raise BackupConfigurationError(f"invalid file name {filename!r} for backup source {name!r}")
        self.name = name
        self.argv = list(argv)
        self.filename = filename
        self.env = dict(env or {})
        self.timeout = timeout

    def prepare(self, staging: Path) -> SourceOutput:
        target = staging / self.filename
        environment = {"PATH": os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", **self.env}
        try:
            with target.open("wb") as handle:
                completed = subprocess.run(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.PIPE,
                    env=environment,
                    timeout=self.timeout,
                    check=False,
                )
        except FileNotFoundError as e:
            raise SourceFailed(
                f"backup source {self.name!r}: {self.argv[0]} is not installed",
                detail_zh=f"备份源 {self.name!r} 的程序未安装",
                source=self.name,
            ) from e
        except subprocess.TimeoutExpired as e:
            raise SourceFailed(
                f"backup source {self.name!r}: {self.argv[0]} did not finish within {self.timeout:g} s",
                detail_zh=f"备份源 {self.name!r} 超时",
                source=self.name,
            ) from e
        if completed.returncode != 0:
            lines = completed.stderr.decode("utf-8", "replace").strip().splitlines()
            last = lines[-1] if lines else f"exit code {completed.returncode}"
            raise SourceFailed(
                f"backup source {self.name!r}: {os.path.basename(self.argv[0])} failed: {last}",
                detail_zh=f"备份源 {self.name!r} 执行失败",
                source=self.name,
            )
        return SourceOutput(
            roots={self.name: staging}, sections={self.name: {"command": os.path.basename(self.argv[0])}}
        )


__all__ = [
    "AuditSource",
    "BackupSource",
    "CommandSource",
    "ConfigSource",
    "DatabaseSource",
    "FileWriterSource",
    "KeyStoreSource",
    "PathsSource",
    "SourceOutput",
    "SourceRegistry",
    "find_pg_dump",
]

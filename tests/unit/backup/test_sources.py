"""Backup source plugins: the registry, the generic adapters, the SQLite copy, paths."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from backup.errors import BackupConfigurationError, SourceFailed, SourceMissing
from backup.sources import (
    BackupSource,
    CommandSource,
    ConfigSource,
    DatabaseSource,
    FileWriterSource,
    PathsSource,
    SourceOutput,
    SourceRegistry,
)


class LDIFSource:
    """What a directory component would register: any object with a name and prepare()."""

    name = "ldap"

    def prepare(self, staging: Path) -> SourceOutput:
        (staging / "directory.ldif").write_text("dn: dc=example\n")
        return SourceOutput(roots={"ldap": staging}, sections={"ldap": {"entries": 1}})


def test_the_registry_keeps_order_selects_by_name_and_refuses_duplicates() -> None:
    registry = SourceRegistry()
    registry.register(PathsSource([]))
    registry.register(LDIFSource())
    assert isinstance(LDIFSource(), BackupSource)

    assert registry.names() == ["paths", "ldap"]
    assert [s.name for s in registry.select([])] == ["paths", "ldap"]
    assert [s.name for s in registry.select(["ldap"])] == ["ldap"]
    assert "ldap" in registry and registry.get("ldap").name == "ldap"
    with pytest.raises(BackupConfigurationError, match="already registered"):
        registry.register(LDIFSource())
    with pytest.raises(BackupConfigurationError, match="unknown backup source 'tsa'") as caught:
        registry.select(["ldap", "tsa"])
    assert caught.value.extra["source"] == "tsa"
    with pytest.raises(BackupConfigurationError):
        registry.register(object())  # type: ignore[arg-type]


def test_paths_source_names_each_path_and_fails_on_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b.txt").write_text("b")
    output = PathsSource([tmp_path / "a", tmp_path / "b.txt"]).prepare(tmp_path / "staging")
    assert output.roots == {"paths-1-a": tmp_path / "a", "paths-2-b.txt": tmp_path / "b.txt"}

    with pytest.raises(SourceMissing) as caught:
        PathsSource([tmp_path / "gone"]).prepare(tmp_path)
    assert caught.value.code == "backup.source_missing" and caught.value.extra["path"] == str(tmp_path / "gone")


def test_file_writer_and_command_sources(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    written = FileWriterSource("ldap", "directory.ldif", lambda p: p.write_text("dn: x\n") and {"entries": 1})
    output = written.prepare(staging)
    assert output.roots == {"ldap": staging} and output.sections == {"ldap": {"entries": 1}}
    with pytest.raises(SourceFailed, match="did not write"):
        FileWriterSource("lazy", "nothing.txt", lambda p: None).prepare(staging)

    command = CommandSource("echo", [sys.executable, "-c", "print('dn: dc=gov')"], "out.ldif")
    assert command.prepare(staging).roots == {"echo": staging}
    assert (staging / "out.ldif").read_text() == "dn: dc=gov\n"
    failing = CommandSource("bad", [sys.executable, "-c", "import sys; sys.exit('slapcat: no database')"], "x")
    with pytest.raises(SourceFailed, match="slapcat: no database") as caught:
        failing.prepare(staging)
    assert caught.value.code == "backup.source_failed" and caught.value.extra["source"] == "bad"
    with pytest.raises(SourceFailed, match="not installed"):
        CommandSource("gone", ["/nonexistent/slapcat"], "x").prepare(staging)
    with pytest.raises(BackupConfigurationError):
        CommandSource("x", ["true"], "../escape")


def test_sqlite_source_makes_a_plain_consistent_copy_with_row_counts(tmp_path: Path) -> None:
    database = tmp_path / "live.db"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute('CREATE TABLE "odd ""name""" (x)')
        connection.execute("CREATE TABLE items (x)")
        connection.executemany("INSERT INTO items VALUES (?)", [(n,) for n in range(25)])
    writer = sqlite3.connect(database)  # a connection with uncommitted work must not disturb the copy
    writer.execute("BEGIN")
    writer.execute("INSERT INTO items VALUES (99)")
    staging = tmp_path / "staging"
    staging.mkdir()
    try:
        output = DatabaseSource(f"sqlite:///{database}").prepare(staging)
    finally:
        writer.rollback()
        writer.close()

    assert output.row_counts == {"items": 25, 'odd "name"': 0}
    assert sorted(p.name for p in staging.iterdir()) == ["live.db"]  # no -wal or -shm companions
    with sqlite3.connect(staging / "live.db") as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert copy.execute("SELECT count(*) FROM items").fetchone()[0] == 25
    assert output.sections["database"]["dialect"] == "sqlite"
    with pytest.raises(SourceMissing):
        DatabaseSource(f"sqlite:///{tmp_path / 'absent.db'}").prepare(staging)


def test_config_source_writes_the_effective_settings(tmp_path: Path) -> None:
    config = tmp_path / "hengxin.toml"
    config.write_text("[instance]\n")
    staging = tmp_path / "staging"
    staging.mkdir()
    effective = {"instance": {"name": "恒信"}, "database": {"url": "postgresql+psycopg://app:pw-123@db/hx"}}
    output = ConfigSource(config, lambda: effective).prepare(staging)
    assert output.roots == {"config-effective": staging, "config": config}
    written = (staging / "effective-settings.json").read_text(encoding="utf-8")
    assert "恒信" in written and "pw-123" not in written and "postgresql+psycopg://app:***@db/hx" in written
    assert ConfigSource(None, dict).prepare(staging).roots == {"config-effective": staging}

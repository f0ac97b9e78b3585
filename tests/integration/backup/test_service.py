"""Backups of a real initialised platform with the real restic binary: restore, manifest, copies, retention."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backup.errors import IntegrityFailed
from backup.manifest import Manifest, restored_path
from backup.service import MANIFEST_NAME
from backup.sources import FileWriterSource
from core.store.models import AuditRecordRow
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.restic import flip_byte

from .conftest import BackupWorld


def _restored_manifest(world: BackupWorld, target: Path) -> Manifest:
    staging = world.service.staging_dir("nightly")
    return Manifest.from_json(restored_path(target, staging / MANIFEST_NAME).read_bytes())


def test_backup_of_a_real_platform_restores_byte_for_byte_and_the_manifest_checks_out(
    backup_world: BackupWorld, tmp_path: Path
) -> None:
    world = backup_world
    settings = world.platform.settings
    outcome = world.service.run_backup("nightly", trigger="cli", actor="test")

    assert outcome.error is None, outcome.record.error_message
    record = outcome.record
    assert record.result == "success" and record.snapshot_id
    assert record.files_total >= 7 and record.bytes_added > 0 and record.manifest_sha256
    assert record.details["copies"] == {"offsite": "ok"}
    assert not world.service.staging_dir("nightly").exists()  # staging is cleaned after the run

    target = tmp_path / "restored"
    target.mkdir()
    manifest = world.service.restore("nightly", target)  # restores and verifies every file against the manifest

    # The files backed up as they are come back byte for byte.
    live_files = [p for p in settings.key_directory.rglob("*") if p.is_file()]
    assert live_files
    for path in live_files:
        assert restored_path(target, path).read_bytes() == path.read_bytes(), path
    # The manifest in the snapshot is the one the run recorded.
    staging = world.service.staging_dir("nightly")
    manifest_bytes = restored_path(target, staging / MANIFEST_NAME).read_bytes()
    import hashlib

    assert hashlib.sha256(manifest_bytes).hexdigest() == record.manifest_sha256
    assert set(manifest.roots) >= {"database", "audit", "keys", "keys-inventory", "config-effective"}
    assert manifest.sections["hengxin"]["job"] == "nightly"

    # The SQLite copy opens and holds exactly the manifest's row counts.
    database = restored_path(target, staging / "database" / "hengxin.db")
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        restored_counts = {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    restored_counts = {t: c for t, c in restored_counts.items() if not t.startswith("sqlite_")}
    assert restored_counts == dict(manifest.row_counts)
    assert manifest.row_counts["audit_records"] >= 5

    # The audit head is the last record of the exported chain, which the live chain still contains.
    assert manifest.audit_head is not None
    with world.platform.transaction() as session:
        row = session.get(AuditRecordRow, manifest.audit_head.sequence)
        assert row is not None and row.record_hash == manifest.audit_head.hash
        live_records = session.scalar(select(func.count()).select_from(AuditRecordRow))
    assert live_records == manifest.row_counts["audit_records"] + 1  # + the record of this backup run
    exported = restored_path(target, staging / "audit" / "audit.jsonl").read_text().splitlines()
    assert json.loads(exported[-1])["record_hash"] == manifest.audit_head.hash
    checkpoint = json.loads(restored_path(target, staging / "audit" / "checkpoint.json").read_text())
    assert json.loads(checkpoint["canonical"])["sequence"] == manifest.audit_head.sequence  # a fresh checkpoint
    world.platform.require_audit().verify_checkpoint_signature(checkpoint["canonical"], checkpoint["signature"])

    # Damage one restored file: the manifest names it.
    flip_byte(database)
    from backup.manifest import verify_tree

    with pytest.raises(IntegrityFailed) as caught:
        verify_tree(manifest, target)
    assert caught.value.extra["path"] == "database/hengxin.db"


def test_copy_repository_holds_the_snapshot_and_retention_applies_to_both(
    make_backup_world: Callable[..., BackupWorld], tmp_path: Path
) -> None:
    world = make_backup_world(job={"retention": {"keep_last": 1}})
    first = world.service.run_backup("nightly")
    second = world.service.run_backup("nightly")
    assert first.error is None and second.error is None

    primary = world.service.snapshots("primary", job="nightly")
    copies = world.service.snapshots("offsite", job="nightly")
    assert [s.short_id for s in primary] == [second.record.snapshot_id]
    assert len(copies) == 1 and (copies[0].original or "").startswith(primary[0].id[:8])
    assert second.record.details["retention"]["primary"] == {"kept": 1, "removed": 1}

    # The off-site copy restores and verifies on its own.
    target = tmp_path / "from-copy"
    target.mkdir()
    manifest = world.service.restore("nightly", target, repository="offsite")
    assert manifest.audit_head is not None


def test_unchanged_files_keep_their_hashes_and_are_not_read_again(
    backup_world: BackupWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backup.manifest as manifest_module

    hashed: list[str] = []
    real = manifest_module._hash_file

    def counting(path: str):  # type: ignore[no-untyped-def]
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(manifest_module, "_hash_file", counting)
    key_directory = str(backup_world.platform.settings.key_directory)
    # Make the key files old enough to count as settled (not "racily clean").
    for path in Path(key_directory).iterdir():
        os.utime(path, (path.stat().st_atime - 60, path.stat().st_mtime - 60))

    assert backup_world.service.run_backup("nightly").error is None
    first = [p for p in hashed if p.startswith(key_directory)]
    hashed.clear()
    assert backup_world.service.run_backup("nightly").error is None
    second = [p for p in hashed if p.startswith(key_directory)]

    assert first and second == []


def test_a_plugin_source_lands_in_the_snapshot_and_the_manifest(backup_world: BackupWorld, tmp_path: Path) -> None:
    def write_ldif(path: Path) -> dict[str, int]:
        path.write_text("dn: dc=gov,dc=example\nobjectClass: dcObject\n", encoding="utf-8")
        return {"entries": 1}

    backup_world.platform.services["backup_sources"].register(FileWriterSource("ldap", "directory.ldif", write_ldif))

    outcome = backup_world.service.run_backup("nightly")
    assert outcome.error is None

    target = tmp_path / "restored"
    target.mkdir()
    manifest = backup_world.service.restore("nightly", target)
    assert manifest.sections["ldap"] == {"entries": 1}
    assert "ldap/directory.ldif" in manifest.files
    ldif = restored_path(target, backup_world.service.staging_dir("nightly") / "ldap" / "directory.ldif")
    assert ldif.read_text().startswith("dn: dc=gov")


def test_the_secret_store_is_never_backed_up(make_backup_world: Callable[..., BackupWorld]) -> None:
    world = make_backup_world()
    secret_directory = world.platform.settings.secret_directory
    world.platform.services["backup_sources"].get("paths").paths = [secret_directory.parent]

    outcome = world.service.run_backup("nightly")

    assert outcome.record.result == "failed"
    assert outcome.record.error_code == "backup.secrets_included"
    assert world.service.snapshots("primary") == []


def test_postgresql_backup_restores_with_pg_restore_to_the_same_row_counts(
    make_backup_world: Callable[..., BackupWorld], postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    world = make_backup_world(postgres_cluster.url(postgres_cluster.create_database()), copies=False)
    outcome = world.service.run_backup("nightly")
    assert outcome.error is None, outcome.record.error_message

    target = tmp_path / "restored"
    target.mkdir()
    manifest = world.service.restore("nightly", target)
    assert manifest.sections["database"]["dialect"] == "postgresql"
    dump = restored_path(target, world.service.staging_dir("nightly") / "database" / "hengxin.pgdump")
    assert dump.read_bytes()[:5] == b"PGDMP"

    fresh = postgres_cluster.create_database()
    restore = subprocess.run(
        [
            str(postgres_cluster.bin / "pg_restore"),
            "--no-owner",
            "--exit-on-error",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres_cluster.port),
            "-U",
            "postgres",
            "-d",
            fresh,
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restore.returncode == 0, restore.stderr
    counts = {}
    for table in manifest.row_counts:
        counts[table] = int(postgres_cluster.psql(f'SELECT count(*) FROM "{table}"', database=fresh))
    assert counts == dict(manifest.row_counts)
    assert counts["audit_records"] >= 5 and counts["api_tokens"] == 1

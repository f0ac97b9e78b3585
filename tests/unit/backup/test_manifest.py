"""Backup manifests: hashing, reuse, serialisation and tree verification (no restic involved)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from backup.errors import IntegrityFailed, InvalidBackupRequest, ManifestInvalid, SourceMissing
from backup.manifest import (
    FORMAT_VERSION,
    Manifest,
    ProblemKind,
    build_manifest,
    compare_tree,
    restored_path,
    verify_tree,
)

FROZEN = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


def frozen_clock() -> datetime:
    return FROZEN


def make_tree(base: Path) -> dict[str, Path]:
    database = base / "database"
    config = base / "config"
    (database / "wal").mkdir(parents=True)
    (config / "证书").mkdir(parents=True)
    (database / "hengxin.db").write_bytes(b"\x00sqlite" * 1000)
    (database / "wal" / "000001").write_bytes(b"wal record")
    (database / "empty").write_bytes(b"")
    (config / "hengxin.toml").write_text('name = "恒信"\n', encoding="utf-8")
    (config / "证书" / "根证书.pem").write_text("PEM\n")
    (config / "current").symlink_to("hengxin.toml")
    settle(base)
    return {"database": database, "config": config}


def settle(base: Path) -> None:
    """Date every file an hour back, as files that were not just written."""
    for path in [base, *base.rglob("*")]:
        os.utime(path, ns=(HOUR_AGO_NS, HOUR_AGO_NS), follow_symlinks=False)


class HashCounter:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, key: str) -> None:
        self.keys.append(key)


def test_files_are_keyed_by_root_name_with_their_sha256_and_size(tmp_path: Path) -> None:
    roots = make_tree(tmp_path)

    manifest = build_manifest(roots, clock=frozen_clock)

    assert sorted(manifest.files) == [
        "config/current",
        "config/hengxin.toml",
        "config/证书/根证书.pem",
        "database/empty",
        "database/hengxin.db",
        "database/wal/000001",
    ]
    db = manifest.files["database/hengxin.db"]
    content = (roots["database"] / "hengxin.db").read_bytes()
    assert (db.kind, db.size, db.sha256) == ("file", len(content), hashlib.sha256(content).hexdigest())
    link = manifest.files["config/current"]
    assert (link.kind, link.target) == ("symlink", "hengxin.toml")
    assert manifest.roots == {"database": str(roots["database"]), "config": str(roots["config"])}
    assert manifest.created == FROZEN
    assert manifest.format_version == FORMAT_VERSION


def test_a_sequence_of_paths_names_roots_after_their_last_component_and_a_file_root_is_one_key(
    tmp_path: Path,
) -> None:
    roots = make_tree(tmp_path)
    single = roots["database"] / "hengxin.db"

    manifest = build_manifest([roots["config"], single])

    assert set(manifest.roots) == {"config", "hengxin.db"}
    assert "hengxin.db" in manifest.files
    assert manifest.files["hengxin.db"].size == single.stat().st_size


def test_roots_with_the_same_name_or_a_missing_root_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data").mkdir(parents=True)

    with pytest.raises(InvalidBackupRequest):
        build_manifest([tmp_path / "a" / "data", tmp_path / "b" / "data"])
    with pytest.raises(InvalidBackupRequest):
        build_manifest({"a/b": tmp_path / "a"})
    with pytest.raises(SourceMissing) as caught:
        build_manifest({"data": tmp_path / "absent"})
    assert caught.value.extra["path"] == str(tmp_path / "absent")
    assert caught.value.code == "backup.source_missing"


def test_a_clock_without_time_zone_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path)
    with pytest.raises(InvalidBackupRequest):
        build_manifest({"database": tmp_path / "database"}, clock=lambda: datetime(2025, 1, 1))


def test_created_time_is_stored_in_utc() -> None:
    east_eight = timezone(timedelta(hours=8))
    manifest = Manifest(created=datetime(2025, 3, 1, 16, 30, tzinfo=east_eight), roots={}, files={})
    assert Manifest.from_json(manifest.to_json()).created == FROZEN


def test_unchanged_files_are_not_hashed_again(tmp_path: Path) -> None:
    roots = make_tree(tmp_path)
    first_count, second_count = HashCounter(), HashCounter()

    first = build_manifest(roots, clock=frozen_clock, on_hash=first_count)
    second = build_manifest(roots, previous=first, clock=frozen_clock, on_hash=second_count)

    assert len(first_count.keys) == 5  # every regular file, not the symbolic link
    assert second_count.keys == []
    assert second.files == first.files


def test_a_touched_file_is_hashed_again_and_only_that_one(tmp_path: Path) -> None:
    roots = make_tree(tmp_path)
    first = build_manifest(roots)
    toml = roots["config"] / "hengxin.toml"
    later = HOUR_AGO_NS + 10**9
    os.utime(toml, ns=(later, later))
    counter = HashCounter()

    second = build_manifest(roots, previous=first, on_hash=counter)

    assert counter.keys == ["config/hengxin.toml"]
    assert second.files["config/hengxin.toml"].sha256 == first.files["config/hengxin.toml"].sha256


def test_a_file_replaced_with_same_size_and_mtime_is_caught_by_its_inode(tmp_path: Path) -> None:
    roots = make_tree(tmp_path)
    first = build_manifest(roots)
    wal = roots["database"] / "wal" / "000001"
    replacement = wal.with_name("000001.new")
    replacement.write_bytes(b"WAL RECORD")  # same size, different content
    os.utime(replacement, ns=(HOUR_AGO_NS, HOUR_AGO_NS))
    replacement.replace(wal)
    counter = HashCounter()

    second = build_manifest(roots, previous=first, on_hash=counter)

    assert counter.keys == ["database/wal/000001"]
    assert second.files["database/wal/000001"].sha256 == hashlib.sha256(b"WAL RECORD").hexdigest()


def test_a_file_written_just_before_hashing_is_hashed_again_next_time(tmp_path: Path) -> None:
    roots = make_tree(tmp_path)
    fresh = roots["database"] / "hengxin.db"
    fresh.write_bytes(b"written a moment ago")  # mtime = now: a same-tick rewrite could go unseen
    first = build_manifest(roots)
    assert not first.files["database/hengxin.db"].settled
    counter = HashCounter()

    build_manifest(roots, previous=first, on_hash=counter)

    assert counter.keys == ["database/hengxin.db"]


def test_json_round_trip_is_lossless_and_stable(tmp_path: Path) -> None:
    roots = make_tree(tmp_path)
    (roots["database"] / os.fsdecode(b"raw-\xff\xfe.bin")).write_bytes(b"not utf-8 name")
    manifest = (
        build_manifest(roots, clock=frozen_clock)
        .with_row_counts({"certificates": 120, "users": 7})
        .with_audit_head(4711, "ab" * 32)
        .with_section("restic", {"version": "0.14.0"})
    )

    text = manifest.to_json()
    again = Manifest.from_json(text)

    assert again == manifest
    assert again.to_json() == text
    document = json.loads(text)
    assert list(document) == sorted(document)
    assert document["audit_head"] == {"sequence": 4711, "hash": "ab" * 32}
    assert document["row_counts"] == {"certificates": 120, "users": 7}
    assert text.isascii()


def test_sections_return_new_manifests_and_refuse_non_json_values(tmp_path: Path) -> None:
    manifest = build_manifest(make_tree(tmp_path))

    counted = manifest.with_row_counts({"users": 3})

    assert manifest.row_counts == {} and counted.row_counts == {"users": 3}
    with pytest.raises(InvalidBackupRequest):
        manifest.with_section("bad", {1, 2})
    with pytest.raises(InvalidBackupRequest):
        manifest.with_row_counts({"users": True})


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"format_version": 99}),
        json.dumps({"format_version": 1, "created": "2025-01-01T00:00:00", "roots": {}, "files": {}}),
        json.dumps(
            {
                "format_version": 1,
                "created": "2025-01-01T00:00:00+00:00",
                "roots": {"d": "/d"},
                "files": {"d/x": {"kind": "file", "size": 1, "sha256": "zz", "mtime_ns": 1, "inode": 1}},
                "row_counts": {},
                "sections": {},
                "audit_head": None,
            }
        ),
    ],
)
def test_malformed_manifests_are_refused(text: str) -> None:
    with pytest.raises(ManifestInvalid) as caught:
        Manifest.from_json(text)
    assert caught.value.code == "backup.manifest_invalid"


def copy_tree_to_restore_layout(roots: dict[str, Path], target: Path) -> None:
    """Lay the roots out as ``restic restore --target target`` would."""
    import shutil

    for source in roots.values():
        shutil.copytree(source, restored_path(target, source), symlinks=True)


def test_an_identical_tree_verifies(tmp_path: Path) -> None:
    roots = make_tree(tmp_path / "live")
    manifest = build_manifest(roots)
    target = tmp_path / "restored"
    copy_tree_to_restore_layout(roots, target)

    assert compare_tree(manifest, target) == []
    verify_tree(manifest, target)
    verify_tree(manifest, tmp_path, roots=roots)  # the live sources, located explicitly


def test_every_kind_of_difference_is_reported_by_key(tmp_path: Path) -> None:
    roots = make_tree(tmp_path / "live")
    manifest = build_manifest(roots)
    target = tmp_path / "restored"
    copy_tree_to_restore_layout(roots, target)
    database = restored_path(target, roots["database"])
    config = restored_path(target, roots["config"])
    db = bytearray((database / "hengxin.db").read_bytes())
    db[100] ^= 0x01
    (database / "hengxin.db").write_bytes(bytes(db))
    (database / "wal" / "000001").unlink()
    (database / "intruder").write_bytes(b"?")
    (config / "current").unlink()
    (config / "current").write_text("now a file")

    problems = compare_tree(manifest, target)

    assert [(p.path, p.kind) for p in problems] == [
        ("config/current", ProblemKind.TYPE_CHANGED),
        ("database/hengxin.db", ProblemKind.MODIFIED),
        ("database/intruder", ProblemKind.EXTRA),
        ("database/wal/000001", ProblemKind.MISSING),
    ]
    assert problems[1].disk_path == str(database / "hengxin.db")
    with pytest.raises(IntegrityFailed) as caught:
        verify_tree(manifest, target)
    assert caught.value.extra["path"] == "config/current"
    assert caught.value.extra["problem_count"] == 4
    assert "3 more" in caught.value.detail


def test_a_missing_root_reports_all_its_files_missing(tmp_path: Path) -> None:
    roots = make_tree(tmp_path / "live")
    manifest = build_manifest(roots)

    problems = compare_tree(manifest, tmp_path / "empty-restore")

    assert {p.kind for p in problems} == {ProblemKind.MISSING}
    assert len(problems) == len(manifest.files)


def test_each_file_entry_is_one_line_of_the_json(tmp_path: Path) -> None:
    manifest = build_manifest(make_tree(tmp_path), clock=frozen_clock)

    text = manifest.to_json()

    document = json.loads(text)
    entry_lines = [line for line in text.splitlines() if line.startswith('    "') and line.endswith(("},", "}"))]
    assert len(entry_lines) == len(manifest.files) == len(document["files"])
    link = document["files"]["config/current"]
    assert link == {
        "inode": manifest.files["config/current"].inode,
        "kind": "symlink",
        "mtime_ns": manifest.files["config/current"].mtime_ns,
        "settled": True,
        "sha256": hashlib.sha256(b"hengxin.toml").hexdigest(),
        "size": len(b"hengxin.toml"),
        "target": "hengxin.toml",
    }
    assert list(document["files"]) == sorted(document["files"])


def test_many_files_are_hashed_in_parallel_with_the_same_result_and_the_first_unreadable_one_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backup.manifest as manifest_module
    from backup.errors import SourceUnreadable

    root = tmp_path / "many"
    root.mkdir()
    for number in range(60):
        (root / f"f{number:02d}").write_bytes(os.urandom(number * 997))
    settle(tmp_path)
    monkeypatch.setattr(manifest_module, "_HASH_THREADS", 4)

    manifest = build_manifest({"many": root})

    assert len(manifest.files) == 60
    for number in (0, 17, 59):
        content = (root / f"f{number:02d}").read_bytes()
        assert manifest.files[f"many/f{number:02d}"].sha256 == hashlib.sha256(content).hexdigest()

    real_hash = manifest_module._hash_file

    def refuse(path: str) -> object:
        if path.endswith(("f07", "f41")):
            raise PermissionError(13, "Permission denied")
        return real_hash(path)

    monkeypatch.setattr(manifest_module, "_hash_file", refuse)
    with pytest.raises(SourceUnreadable) as caught:
        build_manifest({"many": root})
    assert caught.value.extra["items"] == [str(root / "f07")]

"""The restic adapter against the real restic binary, in temporary repositories."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backup.errors import (
    IntegrityFailed,
    PathNotInSnapshot,
    RepositoryExists,
    RepositoryLocked,
    RepositoryNotFound,
    RepositoryUnwritable,
    ResticMissing,
    ResticTimeout,
    SnapshotNotFound,
    SourceMissing,
    SourceUnreadable,
    WrongPassword,
)
from backup.manifest import build_manifest, compare_tree, restored_path, verify_tree
from backup.restic import BackupProgress, Restic, ResticVersion
from tests.fixtures.restic import ResticRepository, exclusive_lock_held, flip_byte


def test_installed_restic_version_is_detected_and_cached(restic: Restic, restic_repository: ResticRepository) -> None:
    version = restic.version()
    assert version >= ResticVersion(0, 14, 0)
    restic.binary = "/nonexistent/restic"  # a second lookup would now fail: the version is cached
    assert restic.version() == version


def test_init_creates_a_repository_and_refuses_to_overwrite_it(restic_binary: str, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("init-password-for-test\n")
    repository = Restic(tmp_path / "new-repo", password_file, binary=restic_binary, cache_dir=tmp_path / "cache")

    repository_id = repository.init()

    assert repository_id and all(c in "0123456789abcdef" for c in repository_id)
    assert repository.snapshots() == []
    with pytest.raises(RepositoryExists) as caught:
        repository.init()
    assert caught.value.code == "backup.repository_exists"


def test_backup_then_restore_reproduces_every_file_and_the_manifest_verifies(
    restic: Restic, backup_sources: dict[str, Path], tmp_path: Path
) -> None:
    manifest = build_manifest(backup_sources)
    progress: list[BackupProgress] = []

    summary = restic.backup(list(backup_sources.values()), tags=["nightly", "node-1"], progress=progress.append)

    assert summary.snapshot_id
    assert summary.files_new == 5  # restic does not count the symbolic link as a file
    assert summary.total_bytes_processed >= 154_000
    assert progress and all(0.0 <= p.percent_done <= 1.0 for p in progress)

    target = tmp_path / "restored"
    target.mkdir()
    restic.restore(summary.snapshot_id, target)

    for name, source in backup_sources.items():
        for path in source.rglob("*"):
            restored = restored_path(target, path)
            if path.is_symlink():
                assert os.readlink(restored) == os.readlink(path)
            elif path.is_file():
                assert restored.read_bytes() == path.read_bytes(), f"{name}: {path} differs"
    verify_tree(manifest, target)

    damaged = restored_path(target, backup_sources["database"] / "hengxin.db")
    flip_byte(damaged)
    with pytest.raises(IntegrityFailed) as caught:
        verify_tree(manifest, target)
    assert caught.value.code == "backup.integrity_failed"
    assert caught.value.extra["path"] == "database/hengxin.db"
    assert "database/hengxin.db" in caught.value.detail
    assert [p.path for p in compare_tree(manifest, target)] == ["database/hengxin.db"]


def test_snapshots_are_listed_filtered_by_tags_and_forgotten_by_policy(
    restic: Restic, backup_sources: dict[str, Path]
) -> None:
    first = restic.backup([backup_sources["config"]], tags=["config"], host="node-1")
    second = restic.backup([backup_sources["config"]], tags=["config", "weekly"], host="node-1")

    all_snapshots = restic.snapshots()
    weekly = restic.snapshots(tags=["config", "weekly"])

    assert [s.short_id for s in all_snapshots] == [first.snapshot_id, second.snapshot_id]
    assert [s.short_id for s in weekly] == [second.snapshot_id]
    assert weekly[0].hostname == "node-1"
    assert weekly[0].paths == (str(backup_sources["config"]),)
    assert weekly[0].time.tzinfo is not None
    assert second.files_unmodified == 2 and second.files_new == 0

    result = restic.forget(keep_last=1, prune=True)

    assert [s[:8] for s in result.removed] == [first.snapshot_id]
    assert [s.short_id for s in restic.snapshots()] == [second.snapshot_id]


def test_ls_dump_and_stats_read_a_snapshot_without_restoring_it(
    restic: Restic, backup_sources: dict[str, Path]
) -> None:
    summary = restic.backup([backup_sources["config"]])
    assert summary.snapshot_id
    toml = backup_sources["config"] / "hengxin.toml"

    assert restic.dump(summary.snapshot_id, str(toml)) == toml.read_bytes()
    nodes = {node.path: node for node in restic.ls(summary.snapshot_id)}
    assert nodes[str(toml)].type == "file" and nodes[str(toml)].size == toml.stat().st_size
    assert nodes[str(backup_sources["config"] / "current")].type == "symlink"
    stats = restic.stats()
    assert stats.snapshots_count == 1 and stats.total_size == summary.total_bytes_processed

    with pytest.raises(PathNotInSnapshot):
        restic.dump(summary.snapshot_id, str(backup_sources["config"] / "absent"))
    with pytest.raises(SnapshotNotFound):
        restic.restore("deadbeef", backup_sources["config"].parent / "unused")


def test_copy_sends_snapshots_to_a_second_repository_with_its_own_password(
    make_restic_repository: Callable[..., ResticRepository], backup_sources: dict[str, Path]
) -> None:
    primary = make_restic_repository("primary")
    offsite = make_restic_repository("secondary")
    assert primary.password != offsite.password
    source, destination = primary.client(), offsite.client()
    summary = source.backup([backup_sources["config"]], tags=["nightly"])
    assert summary.snapshot_id

    source.copy(destination)

    copies = destination.snapshots()
    assert len(copies) == 1 and (copies[0].original or "").startswith(summary.snapshot_id)
    assert copies[0].tags == ("nightly",)
    toml = backup_sources["config"] / "hengxin.toml"
    assert destination.dump(copies[0].short_id, str(toml)) == toml.read_bytes()
    source.copy(destination, snapshot_ids=[summary.snapshot_id])  # already copied: skipped
    assert len(destination.snapshots()) == 1


def test_wrong_password_is_reported_as_such(restic_repository: ResticRepository, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    client = Restic(restic_repository.path, wrong, binary=restic_repository.binary, cache_dir=tmp_path / "c")

    with pytest.raises(WrongPassword) as caught:
        client.snapshots()
    assert caught.value.code == "backup.wrong_password"
    assert "wrong password" in caught.value.extra["stderr"]


def test_missing_repository_is_reported_as_not_found(restic_repository: ResticRepository, tmp_path: Path) -> None:
    client = Restic(tmp_path / "nothing-here", restic_repository.password_file, binary=restic_repository.binary)

    with pytest.raises(RepositoryNotFound) as caught:
        client.snapshots()
    assert caught.value.code == "backup.repository_not_found"


def test_missing_or_unusable_restic_binary_is_reported(restic_repository: ResticRepository, tmp_path: Path) -> None:
    not_executable = tmp_path / "restic"
    not_executable.write_text("not a program")

    for binary in ("/nonexistent/bin/restic", "no-such-restic-binary", str(not_executable)):
        with pytest.raises(ResticMissing) as caught:
            restic_repository.client(binary=binary).snapshots()
        assert caught.value.code == "backup.restic_missing"


def test_missing_source_path_fails_before_restic_runs(restic: Restic, backup_sources: dict[str, Path]) -> None:
    missing = backup_sources["database"].parent / "not-there"

    with pytest.raises(SourceMissing) as caught:
        restic.backup([backup_sources["config"], missing])

    assert caught.value.code == "backup.source_missing"
    assert caught.value.extra["path"] == str(missing)
    assert restic.snapshots() == []


def test_locked_repository_is_reported_and_a_stale_lock_can_be_removed(
    restic: Restic, restic_repository: ResticRepository, backup_sources: dict[str, Path]
) -> None:
    with exclusive_lock_held(restic_repository) as holder:
        with pytest.raises(RepositoryLocked) as caught:
            restic.backup([backup_sources["config"]])
        assert caught.value.code == "backup.repository_locked"
        assert f"PID {holder.pid}" in (caught.value.extra["locked_by"] or "")
        assert restic_repository.password not in str(caught.value.extra)

    # The holder was killed with SIGKILL: its lock stays, exactly as after a crash.
    assert restic_repository.lock_files()
    with pytest.raises(RepositoryLocked):
        restic.check()
    restic.unlock()
    assert not restic_repository.lock_files()
    assert restic.backup([backup_sources["config"]]).snapshot_id


def test_unreadable_source_file_fails_the_backup_and_names_the_file(
    restic_repository: ResticRepository,
    make_restic_wrapper: Callable[..., Path],
    world_readable_tmp: Path,
) -> None:
    # Root reads every file, so restic runs as nobody through setpriv.
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv is missing: apt-get install util-linux")
    repository = world_readable_tmp / "repo"
    shutil.copytree(restic_repository.path, repository)
    password_file = world_readable_tmp / "password"
    shutil.copy(restic_repository.password_file, password_file)
    source = world_readable_tmp / "source"
    source.mkdir()
    (source / "readable").write_text("fine\n")
    secret = source / "unreadable"
    secret.write_text("root only\n")
    subprocess.run(["chown", "-R", "nobody:", str(world_readable_tmp)], check=True)
    secret.chmod(0o000)
    as_nobody = make_restic_wrapper(prefix="setpriv --reuid=nobody --regid=nogroup --clear-groups")
    client = Restic(repository, password_file, binary=as_nobody, cache_dir=world_readable_tmp / "cache")

    with pytest.raises(SourceUnreadable) as caught:
        client.backup([source])

    error = caught.value
    assert error.code == "backup.source_unreadable"
    assert error.extra["items"] == [str(secret)]
    assert error.extra["exit_code"] == 3
    assert error.extra["snapshot_id"]  # restic 0.14 still saves the incomplete snapshot


def test_unwritable_repository_is_reported_without_waiting_for_restic_retries(
    restic_repository: ResticRepository,
    make_restic_wrapper: Callable[..., Path],
    backup_sources: dict[str, Path],
) -> None:
    # Root ignores mode bits, not a read-only mount: restic runs in a private mount
    # namespace where the repository is bind-mounted read-only.
    read_only = make_restic_wrapper(
        before=f"export RO={shlex.quote(str(restic_repository.path))}",
        prefix="""unshare -m sh -c 'mount --bind -o ro "$RO" "$RO" && exec "$0" "$@"'""",
    )
    client = restic_repository.client(binary=read_only)

    started = time.monotonic()
    with pytest.raises(RepositoryUnwritable) as caught:
        client.backup([backup_sources["config"]])

    assert time.monotonic() - started < 15  # restic alone would retry for about a minute
    assert caught.value.code == "backup.repository_unwritable"
    assert "read-only file system" in caught.value.detail


def test_check_read_data_finds_a_corrupted_pack_and_names_it(
    restic: Restic, restic_repository: ResticRepository, backup_sources: dict[str, Path]
) -> None:
    restic.backup([backup_sources["database"]])
    pack = max(restic_repository.pack_files(), key=lambda p: p.stat().st_size)
    flip_byte(pack)

    restic.check()  # the structure is intact: only reading the data finds the damage
    with pytest.raises(IntegrityFailed) as caught:
        restic.check(read_data=True)

    assert caught.value.code == "backup.integrity_failed"
    assert caught.value.extra["packs"] == [pack.name]
    assert pack.name in caught.value.detail


def test_long_backup_reports_progress_and_is_stopped_at_its_timeout(
    restic_repository: ResticRepository, make_restic_wrapper: Callable[..., Path], tmp_path: Path
) -> None:
    # A sparse 1 TiB file takes restic hours to read: a real, long-running backup.
    huge = tmp_path / "huge" / "sparse.img"
    huge.parent.mkdir()
    with huge.open("wb") as handle:
        handle.truncate(1 << 40)
    pid_file = tmp_path / "restic.pid"
    recording = make_restic_wrapper(before=f"echo $$ > {shlex.quote(str(pid_file))}")
    client = restic_repository.client(binary=recording)
    progress: list[BackupProgress] = []

    started = time.monotonic()
    with pytest.raises(ResticTimeout) as caught:
        client.backup([huge.parent], progress=progress.append, timeout=2.5)

    assert time.monotonic() - started < 10
    assert caught.value.code == "backup.timeout"
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()
    assert any(p.bytes_done > 0 for p in progress)
    assert progress[-1].total_bytes == 1 << 40
    # restic was interrupted with SIGINT first, so it removed its own lock.
    assert not restic_repository.lock_files()


def test_password_never_reaches_argv_logs_or_errors(
    restic_repository: ResticRepository,
    make_restic_wrapper: Callable[..., Path],
    backup_sources: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = restic_repository.password
    record = tmp_path / "invocations.log"
    quoted = shlex.quote(str(record))
    recording = make_restic_wrapper(
        before=(
            f'{{ echo "pid $$"; for a in "$@"; do printf "arg %s\\n" "$a"; done; '
            f'env | sed "s/^/env /"; tr "\\0" " " < /proc/$$/cmdline; echo; }} >> {quoted}'
        )
    )
    client = restic_repository.client(binary=recording)
    caplog.set_level(logging.DEBUG, logger="hengxin.backup")

    summary = client.backup([backup_sources["config"]], tags=["nightly"])
    client.snapshots()
    client.check()
    assert summary.snapshot_id
    client.dump(summary.snapshot_id, str(backup_sources["config"] / "hengxin.toml"))
    recorded = record.read_text()
    assert recorded.count("pid ") == 5  # version, backup, snapshots, check, dump
    assert "env RESTIC_PASSWORD_FILE=" in recorded
    assert "env RESTIC_PASSWORD=" not in recorded
    assert password not in recorded

    # restic echoes the repository location when it is not found: a location that
    # contains the password shows that the adapter scrubs restic's output.
    leaky = Restic(
        tmp_path / f"missing-{password}", restic_repository.password_file, binary=recording, cache_dir=tmp_path / "c"
    )
    with pytest.raises(RepositoryNotFound) as not_found:
        leaky.snapshots()

    assert password not in str(not_found.value)
    assert password not in repr(not_found.value.extra)
    assert "***" in not_found.value.extra["stderr"]
    for log_record in caplog.records:
        assert password not in log_record.getMessage()
    assert any("restic backup" in r.getMessage() for r in caplog.records)


def test_the_version_is_asked_once_per_program_file_across_adapters(
    restic_repository: ResticRepository, make_restic_wrapper: Callable[..., Path], tmp_path: Path
) -> None:
    record = tmp_path / "calls.log"
    wrapper = make_restic_wrapper(before=f'[ "$1" = version ] && echo version >> {record}')

    first = restic_repository.client(binary=wrapper).version()
    second = restic_repository.client(binary=wrapper).version()

    assert first == second and record.read_text().count("version") == 1
    wrapper.write_text(wrapper.read_text() + "\n# replaced\n")  # another file now: asked again
    assert restic_repository.client(binary=wrapper).version() == first
    assert record.read_text().count("version") == 2

"""Parsing and classifying restic output, fed with text recorded from restic 0.14.0.

These tests cover the pure helpers of the adapter; everything that runs restic
is in tests/integration/backup/.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup.errors import (
    BackupConfigurationError,
    IntegrityFailed,
    InvalidBackupRequest,
    PathNotInSnapshot,
    RepositoryExists,
    RepositoryLocked,
    RepositoryNotFound,
    RepositoryUnwritable,
    ResticFailed,
    SnapshotNotFound,
    WrongPassword,
)
from backup.restic import (
    Restic,
    ResticVersion,
    classify_failure,
    excerpt_stderr,
    parse_backup_progress,
    parse_backup_summary,
    parse_init_output,
    parse_restic_time,
    parse_snapshot,
    redact_url_credentials,
    scrub,
)

PACK = "49e303fe8ac824a26254ec2e3aa5174c6945659f397370ac6a0cc32bd0475dc5"

LOCKED_0_14 = (
    "unable to create lock in backend: repository is already locked exclusively by PID 6178 on vm"
    " by root (UID 0, GID 0)\n"
    "lock was created at 2026-11-22 05:29:18 (1.018981941s ago)\n"
    "storage ID c66e722d\n"
    "the `unlock` command can be used to remove stale locks\n"
)

READ_ONLY_0_14 = (
    "Save(<lock/9389dcdf57>) returned error, retrying after 552.330144ms:"
    " open repo/locks/9389dcdf57e6-tmp-103579131: read-only file system\n"
    "Save(<lock/9389dcdf57>) returned error, retrying after 1.080381816s:"
    " open repo/locks/9389dcdf57e6-tmp-2901984080: read-only file system\n"
    "open repo/locks/9389dcdf57e6-tmp-784005902: read-only file system\n"
    "github.com/restic/restic/internal/backend/local.(*Local).Save\n"
    "\tgithub.com/restic/restic/internal/backend/local/local.go:153\n"
    "main.lockRepository\n"
    "\tgithub.com/restic/restic/cmd/restic/lock.go:42\n"
    "runtime.goexit\n"
    "\truntime/asm_amd64.s:1594\n"
    "unable to create lock in backend\n"
)

NO_REPOSITORY_0_14 = """Fatal: unable to open config file: stat nope/config: no such file or directory
Is there a repository at the following location?
nope
"""

SUMMARY_0_14 = (
    '{"message_type":"summary","files_new":2,"files_changed":0,"files_unmodified":0,"dirs_new":2,'
    '"dirs_changed":0,"dirs_unmodified":0,"data_blobs":2,"tree_blobs":3,"data_added":101404,'
    '"total_files_processed":2,"total_bytes_processed":100006,"total_duration":0.212352166,'
    '"snapshot_id":"7a17d759"}'
)

STATUS_0_14 = (
    '{"message_type":"status","percent_done":0.0000133514404296875,"total_files":1,'
    '"total_bytes":1099511627776,"bytes_done":14680064,"current_files":["/sp/huge"]}'
)

SNAPSHOT_0_14 = (
    '{"time":"2026-11-22T05:28:59.213200493Z","tree":"c58725e60c2f596b38eaae63936d7f402da792a3085269bf171b'
    '89900fec7973","paths":["/tmp/rx/src"],"hostname":"h1","username":"root","tags":["t1","t2"],'
    '"original":"7aba7e7e886fd9169134d5650735b2c551fe653b85be55ce43afbfa8a0fc0eb7",'
    '"id":"1f7bd0e11c97c74385dbc050a1ed0e1535745bd3575ca3c91f51ef243da31dc1","short_id":"1f7bd0e1"}'
)


def test_version_is_parsed_from_restic_version_output_and_compares() -> None:
    version = ResticVersion.parse("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n")
    assert version == ResticVersion(0, 14, 0) and str(version) == "0.14.0"
    assert ResticVersion.parse("restic 0.16.4-dev (compiled manually) compiled with go1.21") > version
    assert version < ResticVersion(0, 15, 0)
    with pytest.raises(ResticFailed):
        ResticVersion.parse("bash: restic: command not found")


def test_backup_summary_and_progress_lines_are_parsed() -> None:
    summary = parse_backup_summary(json.loads(SUMMARY_0_14))
    assert summary.snapshot_id == "7a17d759"
    assert (summary.files_new, summary.data_added, summary.total_bytes_processed) == (2, 101404, 100006)
    assert summary.duration == pytest.approx(0.212352166)
    progress = parse_backup_progress(json.loads(STATUS_0_14))
    assert progress.bytes_done == 14680064 and progress.total_bytes == 1 << 40
    assert progress.current_files == ("/sp/huge",)


def test_snapshot_times_keep_microseconds_and_become_utc() -> None:
    snapshot = parse_snapshot(json.loads(SNAPSHOT_0_14))
    assert snapshot.time == datetime(2026, 11, 22, 5, 28, 59, 213200, tzinfo=UTC)
    assert snapshot.tags == ("t1", "t2") and snapshot.parent is None
    assert snapshot.original is not None and snapshot.original.startswith("7aba7e7e")
    assert parse_restic_time("2026-11-22T13:28:59.5+08:00") == datetime(2026, 11, 22, 5, 28, 59, 500000, tzinfo=UTC)
    with pytest.raises(ResticFailed):
        parse_restic_time("yesterday")


def test_init_output_gives_the_repository_id_in_text_and_json_forms() -> None:
    text = "created restic repository 0d12f9a99d at repo\n\nPlease note that knowledge of your password..."
    assert parse_init_output(text) == "0d12f9a99d"
    assert parse_init_output('{"message_type":"initialized","id":"abc123","repository":"r"}\n') == "abc123"
    assert parse_init_output("something else") is None


@pytest.mark.parametrize(
    ("command", "exit_code", "stderr", "expected", "code"),
    [
        ("snapshots", 1, "Fatal: wrong password or no key found\n", WrongPassword, "backup.wrong_password"),
        ("snapshots", 1, "Fatal: an empty password is not a password\n", WrongPassword, "backup.wrong_password"),
        ("snapshots", 12, "", WrongPassword, "backup.wrong_password"),
        ("snapshots", 1, NO_REPOSITORY_0_14, RepositoryNotFound, "backup.repository_not_found"),
        ("snapshots", 10, "", RepositoryNotFound, "backup.repository_not_found"),
        ("backup", 1, LOCKED_0_14, RepositoryLocked, "backup.repository_locked"),
        ("backup", 11, "", RepositoryLocked, "backup.repository_locked"),
        ("backup", 1, READ_ONLY_0_14, RepositoryUnwritable, "backup.repository_unwritable"),
        (
            "init",
            1,
            "Fatal: create repository at repo failed: config file already exists\n",
            RepositoryExists,
            "backup.repository_exists",
        ),
        (
            "check",
            1,
            f"Pack ID does not match, want {PACK}, got 43d3f78c04fbd6e8\nFatal: repository contains errors\n",
            IntegrityFailed,
            "backup.integrity_failed",
        ),
        (
            "check",
            1,
            f"pack {PACK}: does not exist\nFatal: repository contains errors\n",
            IntegrityFailed,
            "backup.integrity_failed",
        ),
        (
            "restore",
            1,
            'invalid id "deadbeef": no matching ID found for prefix "deadbeef"\n',
            SnapshotNotFound,
            "backup.snapshot_not_found",
        ),
        (
            "dump",
            2,
            'cannot dump file: path "/tmp/x" not found in snapshot\n',
            PathNotInSnapshot,
            "backup.path_not_in_snapshot",
        ),
        ("backup", 1, "Fatal: something new went wrong\n", ResticFailed, "backup.restic_failed"),
    ],
)
def test_failures_are_classified_by_exit_code_and_restic_message(
    command: str, exit_code: int, stderr: str, expected: type[Exception], code: str
) -> None:
    error = classify_failure(command, exit_code, stderr)
    assert type(error) is expected
    assert error.code == code
    assert error.extra["command"] == command and error.extra["exit_code"] == exit_code


def test_lock_owner_and_damaged_pack_are_named() -> None:
    locked = classify_failure("backup", 1, LOCKED_0_14)
    assert locked.extra["locked_by"] == "PID 6178 on vm by root (UID 0, GID 0)"
    damaged = classify_failure("check", 1, f"Pack ID does not match, want {PACK}, got 43d3\n")
    assert damaged.extra["packs"] == [PACK]
    assert PACK in damaged.detail


def test_stderr_excerpt_drops_stack_traces_and_repeated_retries() -> None:
    excerpt = excerpt_stderr(READ_ONLY_0_14)
    assert "github.com" not in excerpt and "runtime" not in excerpt
    assert excerpt.count("retrying after") == 1
    assert excerpt.endswith("unable to create lock in backend")
    assert len(excerpt_stderr("x" * 10_000)) <= 2003


def test_scrub_removes_passwords_and_url_credentials() -> None:
    text = "open /srv/repo-hunter2: no such file\nrest:https://backup:s3cr3t@rest.example/repo\n"
    cleaned = scrub(text, ["hunter2", ""])
    assert "hunter2" not in cleaned and "s3cr3t" not in cleaned
    assert "repo-***" in cleaned and "https://***@rest.example/repo" in cleaned
    assert redact_url_credentials("s3:https://s3.example/bucket") == "s3:https://s3.example/bucket"


@pytest.mark.parametrize(
    "name", ["RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_REPOSITORY", "RESTIC_FROM_PASSWORD_FILE", "1BAD"]
)
def test_extra_environment_cannot_override_what_the_adapter_sets(name: str, tmp_path: Path) -> None:
    with pytest.raises(BackupConfigurationError) as caught:
        Restic(tmp_path / "repo", tmp_path / "pw", extra_env={name: "x"})
    assert caught.value.code == "backup.configuration_invalid"


def test_construction_runs_nothing_and_leaves_os_environ_alone(tmp_path: Path) -> None:
    before = dict(os.environ)
    client = Restic(
        tmp_path / "repo",
        tmp_path / "pw",
        binary="/nonexistent/restic",
        extra_env={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"},
    )
    assert dict(os.environ) == before
    assert "pw" not in repr(client)
    assert "***@" in repr(Restic("rest:https://user:pass@host/repo", tmp_path / "pw"))


def test_malformed_arguments_are_refused_before_restic_runs(tmp_path: Path) -> None:
    # The binary does not exist: reaching restic would raise ResticMissing instead.
    password_file = tmp_path / "pw"
    password_file.write_text("pw\n")
    source = tmp_path / "src"
    source.mkdir()
    client = Restic(tmp_path / "repo", password_file, binary="/nonexistent/restic")

    for call in (
        lambda: client.restore("--help", tmp_path / "out"),
        lambda: client.restore("latest; rm -rf /", tmp_path / "out"),
        lambda: client.dump("latest", "relative/path"),
        lambda: client.backup([source], tags=["a,b"]),
        lambda: client.backup([]),
        lambda: client.check(read_data=True, read_data_subset="1/5"),
        lambda: client.check(read_data_subset="everything"),
        lambda: client.forget(prune=True),
        lambda: client.forget(keep_daily=-1),
        lambda: client.stats(mode="fast"),
    ):
        with pytest.raises(InvalidBackupRequest):
            call()


def test_an_unreadable_password_file_is_a_configuration_error_without_its_path(tmp_path: Path) -> None:
    client = Restic(tmp_path / "repo", tmp_path / "secret-password-file", binary="/nonexistent/restic")
    with pytest.raises(BackupConfigurationError) as caught:
        client.snapshots()
    assert "secret-password-file" not in str(caught.value)

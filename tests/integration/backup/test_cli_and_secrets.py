"""`hengxin backup ...` as an operator runs it, and the repository password kept out of argv, logs and the API."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET
from backup.sources import DatabaseSource
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.restic import ResticRepository

from .conftest import BackupWorld

HENGXIN = str(Path(sys.executable).parent / "hengxin")


def _hengxin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HENGXIN, "--config", "var/hengxin.toml", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14"},
    )


def _recording_wrapper(make_restic_wrapper: Callable[..., Path], record: Path) -> Path:
    quoted = shlex.quote(str(record))
    return make_restic_wrapper(
        before=(
            f'{{ echo "pid $$"; for a in "$@"; do printf "arg %s\\n" "$a"; done; '
            f'env | sed "s/^/env /"; tr "\\0" " " < /proc/$$/cmdline; echo; }} >> {quoted}'
        )
    )


@pytest.fixture
def cli_instance(
    tmp_path: Path,
    make_restic_repository: Callable[..., ResticRepository],
    make_restic_wrapper: Callable[..., Path],
) -> tuple[Path, ResticRepository, Path]:
    """An instance directory with a config file, initialised, with one job over a template repository."""
    repository = make_restic_repository("primary")
    record = tmp_path / "restic-invocations.log"
    wrapper = _recording_wrapper(make_restic_wrapper, record)
    instance = tmp_path / "instance"
    (instance / "var").mkdir(parents=True)
    (instance / "var" / "hengxin.toml").write_text(
        f"""[instance]
data_dir = "."

[backup]
restic_binary = "{wrapper}"

[[backup.repositories]]
name = "primary"
url = "{repository.path}"
password_secret = "repo-primary"

[[backup.jobs]]
name = "nightly"
repository = "primary"
schedule = "15 3 * * *"
retention = {{ keep_daily = 7 }}
"""
    )
    result = _hengxin("init", cwd=instance)
    assert result.returncode == 0, result.stderr
    secret = instance / "var" / "secrets" / "repo-primary"
    secret.write_text(repository.password + "\n")
    secret.chmod(0o600)
    return instance, repository, record


def test_backup_commands_show_progress_record_runs_fail_with_the_code_and_never_show_the_password(
    cli_instance: tuple[Path, ResticRepository, Path],
) -> None:
    instance, repository, record = cli_instance

    run = _hengxin("--log-level", "DEBUG", "backup", "run", "nightly", cwd=instance)

    assert run.returncode == 0, run.stderr
    assert "backup of 'nightly' succeeded: snapshot " in run.stdout
    assert "backup nightly:" in run.stderr and "%" in run.stderr  # restic's progress, on stderr
    status = _hengxin("backup", "status", cwd=instance)
    assert status.returncode == 0 and "last success: 20" in status.stdout and "15 3 * * *" in status.stdout
    listed = _hengxin("backup", "list", "--json", cwd=instance)
    [line] = [line for line in listed.stdout.splitlines() if line.startswith("{")]  # other lines: log output
    assert json.loads(line)["result"] == "success"
    check = _hengxin("backup", "check", "nightly", "--read-data-subset", "1/3", cwd=instance)
    assert check.returncode == 0, check.stderr
    target = instance / "restored"
    restore = _hengxin("backup", "restore", "nightly", str(target), cwd=instance)
    assert restore.returncode == 0, restore.stderr
    assert "all match the manifest" in restore.stdout

    # A failed run: the record, then one line with the error code and the exit code of its category.
    secret = instance / "var" / "secrets" / "repo-primary"
    secret.write_text("wrong-password\n")
    failed = _hengxin("backup", "run", "nightly", "--quiet", cwd=instance)
    assert failed.returncode == 78  # a configuration fault (EX_CONFIG)
    assert "backup of 'nightly' failed" in failed.stdout
    [error_line] = [line for line in failed.stderr.splitlines() if line.startswith("hengxin: error:")]
    assert error_line.endswith("[backup.wrong_password]")
    assert "wrong-password" not in failed.stdout + failed.stderr

    recorded = record.read_text()
    assert recorded.count("pid ") >= 8  # backup, forget, check, snapshots, restore (+ version each process)
    assert "env RESTIC_PASSWORD_FILE=" in recorded and "env RESTIC_PASSWORD=" not in recorded
    password = repository.password
    for text in (recorded, run.stdout, run.stderr, status.stdout, listed.stdout, check.stdout, restore.stdout):
        assert password not in text


def test_the_password_is_in_no_log_line_argument_or_api_response(
    backup_world: BackupWorld,
    make_restic_wrapper: Callable[..., Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = backup_world
    record = tmp_path / "invocations.log"
    world.platform.settings.backup.restic_binary = str(_recording_wrapper(make_restic_wrapper, record))
    world.platform.settings.backup.jobs[0].retention.keep_last = 3
    caplog.set_level(logging.DEBUG)
    passwords = [world.primary.password, world.offsite.password]

    assert world.service.run_backup("nightly").error is None
    assert world.service.run_check("nightly").error is None
    world.platform.secrets.put("repo-offsite", "x" + world.offsite.password)  # a failure, with restic's stderr
    failed = world.service.run_backup("nightly")
    assert failed.error is not None
    app = create_app(world.platform.settings, world.platform)
    headers = {"Authorization": f"Bearer {world.platform.secrets.get(ADMIN_TOKEN_SECRET)}"}
    with TestClient(app) as client:
        responses = [
            client.get("/api/v1/backups", headers=headers),
            client.get("/api/v1/backups/jobs", headers=headers),
            client.get("/metrics", headers=headers),
            client.post("/api/v1/backups/nope/run", headers=headers),
            client.get("/api/v1/audit?limit=500", headers=headers),
        ]

    recorded = record.read_text()
    assert "arg backup" in recorded and "arg copy" in recorded and "arg forget" in recorded
    assert "env RESTIC_FROM_PASSWORD_FILE=" in recorded
    for password in passwords:
        assert password not in recorded  # argv, environment and /proc/<pid>/cmdline of every restic process
        for log_record in caplog.records:
            assert password not in log_record.getMessage()
            assert password not in json.dumps(vars(log_record), default=str)
        for response in responses:
            assert password not in response.text
        assert password not in json.dumps([a.to_json() for a in world.platform.alerts.history])


def test_pg_dump_gets_the_password_in_a_private_passfile_not_in_argv(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    record = tmp_path / "pg_dump.log"
    real = postgres_cluster.bin / "pg_dump"
    wrapper = tmp_path / "pg_dump"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'{{ for a in "$@"; do printf "arg %s\\n" "$a"; done; env | sed "s/^/env /"; '
        f'stat -c "mode %a" "$PGPASSFILE"; sed "s/^/passfile /" "$PGPASSFILE"; }} >> {shlex.quote(str(record))}\n'
        f'exec {shlex.quote(str(real))} "$@"\n'
    )
    wrapper.chmod(0o755)
    password = "pg-Secret-" + os.urandom(8).hex()
    source = DatabaseSource(
        postgres_cluster.url(postgres_cluster.create_database()), password=lambda: password, pg_dump_binary=str(wrapper)
    )
    postgres_cluster.psql("SELECT 1")
    staging = tmp_path / "staging"
    staging.mkdir()

    output = source.prepare(staging)

    recorded = record.read_text()
    assert (staging / "hengxin.pgdump").stat().st_size > 0
    assert output.row_counts == {}  # an empty database: no tables yet
    assert "mode 600" in recorded and f"passfile *:*:*:postgres:{password}" in recorded
    assert "env PGPASSWORD" not in recorded
    assert not [line for line in recorded.splitlines() if line.startswith("arg ") and password in line]
    passfile = next(line.split("=", 1)[1] for line in recorded.splitlines() if line.startswith("env PGPASSFILE="))
    assert not Path(passfile).exists()  # removed afterwards

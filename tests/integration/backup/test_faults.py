"""Every fault ends as a failed run with a clear error code, an audit record and an alert: never a success."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backup.service import RunOutcome
from core.store.models import AuditRecordRow
from tests.fixtures.restic import exclusive_lock_held, flip_byte

from .conftest import BackupWorld


def _assert_failed(world: BackupWorld, outcome: RunOutcome, code: str, kind: str = "backup") -> None:
    record = outcome.record
    assert record.result == "failed" and record.kind == kind
    assert record.error_code == code, record.error_message
    assert outcome.error is not None and outcome.error.code == code
    assert record.error_message
    # One alert naming the job and the code.
    alerts = [a for a in world.platform.alerts.history if a.name.startswith("backup.")]
    assert alerts and alerts[-1].name == ("backup.failed" if kind == "backup" else "backup.check_failed")
    assert alerts[-1].details["code"] == code and alerts[-1].details["job"] == "nightly"
    assert alerts[-1].severity == "critical"
    # The run's audit record says failure, with the same code.
    with world.platform.transaction() as session:
        audit = session.scalars(
            select(AuditRecordRow).where(AuditRecordRow.action == f"backup.{kind}").order_by(AuditRecordRow.sequence)
        ).all()
    assert audit[-1].outcome == "failure"
    assert json.loads(audit[-1].details)["error_code"] == code
    assert json.loads(audit[-1].details)["run_id"] == record.id
    # The metrics count it.
    metrics = world.service.metrics()
    if kind == "backup":
        assert 'hengxin_backup_failures_total{job="nightly"} 1' in metrics
        assert 'hengxin_backup_last_run_success{job="nightly"} 0' in metrics
    else:
        assert 'hengxin_backup_check_failures_total{job="nightly"} 1' in metrics


def test_wrong_repository_password(backup_world: BackupWorld) -> None:
    backup_world.platform.secrets.put("repo-primary", "not-the-password")
    outcome = backup_world.service.run_backup("nightly")
    _assert_failed(backup_world, outcome, "backup.wrong_password")


def test_missing_restic_binary(make_backup_world: Callable[..., BackupWorld]) -> None:
    world = make_backup_world(backup={"restic_binary": "/nonexistent/bin/restic"})
    outcome = world.service.run_backup("nightly")
    _assert_failed(world, outcome, "backup.restic_missing")


def test_locked_repository(backup_world: BackupWorld) -> None:
    with exclusive_lock_held(backup_world.primary):
        outcome = backup_world.service.run_backup("nightly")
    _assert_failed(backup_world, outcome, "backup.repository_locked")
    assert "locked" in (outcome.record.error_message or "")


def test_missing_source_path(make_backup_world: Callable[..., BackupWorld], tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    world = make_backup_world(backup={"extra_paths": [str(missing)]})
    outcome = world.service.run_backup("nightly")
    _assert_failed(world, outcome, "backup.source_missing")
    assert str(missing) in (outcome.record.error_message or "")
    assert world.service.snapshots("primary") == []


def test_unwritable_repository(backup_world: BackupWorld, make_restic_wrapper: Callable[..., Path]) -> None:
    # Root ignores mode bits: restic runs in a private mount namespace where the repository is read-only.
    read_only = make_restic_wrapper(
        before=f"export RO={shlex.quote(str(backup_world.primary.path))}",
        prefix="""unshare -m sh -c 'mount --bind -o ro "$RO" "$RO" && exec "$0" "$@"'""",
    )
    backup_world.platform.settings.backup.restic_binary = str(read_only)
    started = time.monotonic()
    outcome = backup_world.service.run_backup("nightly")
    assert time.monotonic() - started < 30
    _assert_failed(backup_world, outcome, "backup.repository_unwritable")


def test_corrupted_pack_is_found_by_a_read_data_check(backup_world: BackupWorld) -> None:
    assert backup_world.service.run_backup("nightly").error is None
    assert backup_world.service.run_check("nightly").error is None  # the structure is fine
    pack = max(backup_world.primary.pack_files(), key=lambda p: p.stat().st_size)
    flip_byte(pack)

    outcome = backup_world.service.run_check("nightly", read_data=True)

    _assert_failed(backup_world, outcome, "backup.integrity_failed", kind="check")
    assert outcome.record.details["repositories"] == {"primary": "backup.integrity_failed", "offsite": "ok"}
    assert pack.name in (outcome.record.error_message or "")


def test_a_failed_copy_fails_the_run_but_keeps_the_primary_snapshot(backup_world: BackupWorld) -> None:
    backup_world.platform.secrets.put("repo-offsite", "wrong-offsite-password")
    outcome = backup_world.service.run_backup("nightly")
    _assert_failed(backup_world, outcome, "backup.wrong_password")
    assert outcome.record.snapshot_id  # the primary backup itself was made
    assert outcome.record.details["copies"] == {"offsite": "backup.wrong_password"}
    assert "offsite" in (outcome.record.error_message or "")


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_failure_reaches_a_real_webhook(
    make_backup_world: Callable[..., BackupWorld], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    world = make_backup_world(alerts={"webhook_url": url})
    world.platform.secrets.put("repo-primary", "not-the-password")

    outcome = world.service.run_backup("nightly")

    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received, "the alert did not reach the webhook"
    alert = received[-1]
    assert alert["name"] == "backup.failed" and alert["severity"] == "critical"
    assert alert["details"]["code"] == "backup.wrong_password"
    assert alert["details"]["run_id"] == outcome.record.id
    assert "not-the-password" not in json.dumps(alert)

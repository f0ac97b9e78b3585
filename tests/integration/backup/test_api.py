"""The backup routes and /metrics, against a real platform and real restic repositories."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, create_api_token

from .conftest import BackupWorld


@pytest.fixture
def client(backup_world: BackupWorld) -> Iterator[TestClient]:
    app = create_app(backup_world.platform.settings, backup_world.platform)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def admin(backup_world: BackupWorld) -> dict[str, str]:
    return {"Authorization": f"Bearer {backup_world.platform.secrets.get(ADMIN_TOKEN_SECRET)}"}


def _wait_for_runs(client: TestClient, headers: dict[str, str], count: int) -> list[dict]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = client.get("/api/v1/backups", headers=headers).json()["items"]
        if len(items) >= count:
            return items
        time.sleep(0.2)
    raise AssertionError("the run did not finish")


def test_a_run_started_over_the_api_is_listed_with_its_outcome(
    client: TestClient, admin: dict[str, str], backup_world: BackupWorld
) -> None:
    started = client.post("/api/v1/backups/nightly/run", headers=admin)
    assert started.status_code == 202
    assert started.json()["status"] == "started"

    [run] = _wait_for_runs(client, admin, 1)
    assert run["job"] == "nightly" and run["result"] == "success" and run["trigger"] == "api"
    assert run["snapshot_id"] and run["bytes_added"] > 0 and run["error_code"] is None
    assert run["actor"].startswith("token:bootstrap-admin@")

    jobs = client.get("/api/v1/backups/jobs", headers=admin).json()
    [job] = jobs["items"]
    assert job["name"] == "nightly" and job["last_success"]["id"] == run["id"]
    assert {r["name"]: r["role"] for r in job["repositories"]} == {"primary": "primary", "offsite": "copy"}
    assert jobs["next_cursor"] is None


def test_runs_are_paginated_newest_first_and_filtered(
    client: TestClient, admin: dict[str, str], backup_world: BackupWorld
) -> None:
    backup_world.platform.secrets.put("repo-primary", "wrong")
    for _ in range(3):
        backup_world.service.run_backup("nightly")
    backup_world.service.run_check("nightly")

    first = client.get("/api/v1/backups?limit=2", headers=admin).json()
    second = client.get(f"/api/v1/backups?limit=2&cursor={first['next_cursor']}", headers=admin).json()
    ids = [r["id"] for r in first["items"] + second["items"]]
    assert ids == [4, 3, 2, 1] and second["next_cursor"] is None
    checks = client.get("/api/v1/backups?kind=check", headers=admin).json()["items"]
    assert [r["kind"] for r in checks] == ["check"]
    failed = client.get("/api/v1/backups?result=failed&job=nightly", headers=admin).json()["items"]
    assert len(failed) == 4 and {r["error_code"] for r in failed} == {"backup.wrong_password"}


def test_unknown_job_is_404_and_a_running_job_is_409(
    client: TestClient, admin: dict[str, str], backup_world: BackupWorld
) -> None:
    missing = client.post("/api/v1/backups/nope/run", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["code"] == "backup.job_not_found"

    import datetime as dt

    lease = backup_world.service.leases.acquire("backup:nightly", dt.timedelta(minutes=5))
    assert lease is not None
    busy = client.post("/api/v1/backups/nightly/run", headers=admin)
    assert busy.status_code == 409
    assert busy.json()["code"] == "backup.job_running"
    backup_world.service.leases.release(lease)


_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)\{job="(?P<job>[^"\\]*)"\} (?P<value>-?[0-9.e+]+)$')


def test_metrics_need_a_token_with_metrics_read_and_follow_the_exposition_format(
    client: TestClient, admin: dict[str, str], backup_world: BackupWorld
) -> None:
    assert backup_world.service.run_backup("nightly").error is None
    token = create_api_token(backup_world.platform, "prometheus", "metrics.read")
    other = create_api_token(backup_world.platform, "reader", "backups.read")

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {other}"}).status_code == 403
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    declared: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter")
            declared[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, line
        assert match["name"] in declared
        samples[match["name"]] = float(match["value"])
    assert samples["hengxin_backup_last_run_success"] == 1
    assert samples["hengxin_backup_runs_total"] == 1 and samples["hengxin_backup_failures_total"] == 0
    assert abs(samples["hengxin_backup_last_success_timestamp_seconds"] - time.time()) < 120
    assert samples["hengxin_backup_last_bytes_added"] > 0 and samples["hengxin_backup_last_duration_seconds"] > 0

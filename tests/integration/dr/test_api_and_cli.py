"""Drills over HTTP (202, history with cursor pagination, report JSON and PDF) and the CLI's exit codes."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, create_api_token
from tests.integration.backup.conftest import BackupWorld


def test_a_drill_started_over_the_api_answers_202_and_is_listed_with_its_report(
    drill_world: Callable[..., BackupWorld],
) -> None:
    world = drill_world(check_read_data=False)
    platform = world.platform
    admin = {"Authorization": f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"}
    reader = create_api_token(platform, "reader", "audit.read")
    with TestClient(create_app(platform.settings, platform)) as client:
        assert client.post("/api/v1/drills", headers={"Authorization": f"Bearer {reader}"}).json()["code"] == (
            "auth.forbidden"
        )
        started = client.post("/api/v1/drills", headers=admin, json={})
        assert started.status_code == 202
        drill_id = started.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            report = client.get(f"/api/v1/drills/{drill_id}", headers=admin).json()
            if report["result"] != "running":
                break
            time.sleep(0.5)
        assert report["result"] == "passed", report
        assert report["actor"].startswith("token:bootstrap-admin")
        listed = client.get("/api/v1/drills", headers=admin, params={"limit": 1}).json()
        assert [item["id"] for item in listed["items"]] == [drill_id]
        assert listed["next_cursor"] is None
        pdf = client.get(f"/api/v1/drills/{drill_id}/report.pdf", headers=admin)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        missing = client.get("/api/v1/drills/nope", headers=admin)
        assert missing.status_code == 404 and missing.json()["code"] == "dr.drill_not_found"


def test_cli_drill_exits_1_when_it_could_not_run(drill_world: Callable[..., BackupWorld], tmp_path) -> None:
    world = drill_world(live_secrets=False, check_read_data=False)
    settings = world.platform.settings
    config = tmp_path / "hengxin.toml"
    from dr.sandbox import to_toml

    config.write_text(to_toml(settings.model_dump(mode="json")))
    from api.cli import app

    result = CliRunner().invoke(app, ["--config", str(config), "dr", "drill"])
    assert result.exit_code == 1, result.output
    assert "could_not_run" in result.output and "dr.secrets_missing" in result.output

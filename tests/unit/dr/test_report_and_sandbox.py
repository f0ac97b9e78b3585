"""Pure parts of the drills: the sandbox configuration, TOML output, and the report renderers."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from core.config import Settings
from dr.errors import SandboxFailed
from dr.report import render_html, render_pdf
from dr.sandbox import Sandbox, sandbox_settings, to_toml

REPORT = {
    "id": "20260101T000000Z-abcdef",
    "instance": "hengxin",
    "result": "failed",
    "started_at": "2026-01-01T00:00:00Z",
    "finished_at": "2026-01-01T00:00:09Z",
    "repository": "primary",
    "snapshot": {"short_id": "1234abcd", "time": "t"},
    "rto_seconds": None,
    "rto_target_seconds": 900.0,
    "rto_met": False,
    "rpo_seconds": 60.0,
    "rpo_target_seconds": 3600.0,
    "rpo_met": True,
    "failing_step": "verify_files",
    "reason": "restored file database/hengxin.db: modified",
    "reason_zh": "恢复的文件 database/hengxin.db 与备份清单不符",
    "steps": [
        {"name": "restore", "status": "passed", "seconds": 1.5},
        {"name": "verify_files", "status": "failed", "seconds": 0.1},
    ],
}
HISTORY = [
    {"id": "a", "rto_seconds": 12.0, "rpo_seconds": 100.0},
    {"id": "b", "rto_seconds": None, "rpo_seconds": 60.0},
]


def test_sandbox_settings_switch_every_outward_side_effect_off(tmp_path: Path) -> None:
    effective = Settings().model_dump(mode="json")
    effective["directory"]["enabled"] = True
    effective["alerts"]["webhook_url"] = "https://alerts.example/hook"
    data = sandbox_settings(
        effective,
        sandbox=tmp_path,
        port=4321,
        database_url="sqlite:////x.db",
        key_directory=tmp_path / "keys",
        audit_export_dir=None,
    )
    parsed = Settings(**tomllib.loads(to_toml(data)))
    assert parsed.instance.base_url == "http://127.0.0.1:4321"
    assert parsed.directory.enabled is False and parsed.backup.scheduler is False and parsed.backup.jobs == []
    assert parsed.alerts.webhook_url == "" and parsed.alerts.syslog_address == ""
    assert parsed.tsa.ntp_servers == [] and parsed.server.port == 4321
    assert parsed.secrets.directory == tmp_path / "secrets"


def test_html_report_has_the_chart_and_the_chinese_reason() -> None:
    page = render_html(REPORT, HISTORY, "zh-CN")
    assert "<svg" in page and "polyline" in page and "灾备演练报告" in page and "与备份清单不符" in page


def test_pdf_report_embeds_the_cjk_font_and_extracts_as_chinese(tmp_path: Path) -> None:
    path = tmp_path / "r.pdf"
    path.write_bytes(render_pdf(REPORT, HISTORY, "zh-CN"))
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "CID TrueType" in fonts and " yes yes " in fonts
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "灾备演练报告" in text and "verify_files" in text


def test_a_prepared_sandbox_process_waits_for_its_arguments_and_goes_with_the_teardown(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "work", "20260101T000000Z-abcdef")
    sandbox.prepare()
    process = sandbox.process
    assert process is not None and process.poll() is None
    assert os.readlink(f"/proc/{process.pid}/cwd") == str(sandbox.path)
    assert os.getpgid(process.pid) == process.pid  # its own process group, stopped as one

    assert sandbox.teardown() == []
    assert process.poll() is not None and not sandbox.path.exists()

    # A prepared process that died is reported by wait_ready with the log's tail, not by start.
    sandbox = Sandbox(tmp_path / "work", "20260101T000000Z-abcdee")
    sandbox.prepare()
    assert sandbox.process is not None
    sandbox.process.kill()
    sandbox.process.wait()
    sandbox.port = 1
    sandbox.start(tmp_path / "missing.toml")
    with pytest.raises(SandboxFailed):
        sandbox.wait_ready(5)
    assert sandbox.teardown() == []

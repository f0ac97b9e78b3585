"""The signature and login probes' own promises: the sandbox configuration they rely on, and "not available"."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr.errors import ProbeFailed
from dr.probes import LoginProbe, ProbeContext, SignatureProbe, probe_pdf
from dr.sandbox import sandbox_settings, to_toml


@pytest.fixture
def nothing_here() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every request 404, like an instance without the component."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"detail": "Not Found"}')

        do_GET = do_POST = _answer  # noqa: N815 - the names http.server looks up

        def log_message(self, *_args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_sandbox_configuration_names_only_the_probe_seal_and_its_own_audience(tmp_path: Path) -> None:
    effective = {
        "signing": {"seals": [{"name": "official", "certificate": "7", "allowed_users": ["zhangwei"]}]},
        "auth": {"audience": "hengxin"},
    }
    seal = {"name": "dr-probe", "certificate": "12", "allowed_tokens": ["dr-drill-x"]}
    settings = sandbox_settings(
        effective, sandbox=tmp_path, port=8123, database_url="sqlite:///x.db", key_directory=None,
        audit_export_dir=None, probe_seal=seal, audience="hengxin-dr-x",
    )
    assert settings["signing"]["seals"] == [seal]
    assert settings["signing"]["keep_signed_files"] is False
    assert settings["auth"]["audience"] == "hengxin-dr-x"
    assert settings["instance"]["base_url"] == "http://127.0.0.1:8123"
    import tomllib

    parsed = tomllib.loads(to_toml(settings))
    assert parsed["signing"]["seals"] == [seal]

    without = sandbox_settings(
        effective, sandbox=tmp_path, port=8123, database_url="sqlite:///x.db", key_directory=None,
        audit_export_dir=None,
    )
    assert without["signing"]["seals"] == []


def test_probe_pdf_is_accepted_by_qpdf(tmp_path: Path) -> None:
    path = tmp_path / "probe.pdf"
    path.write_bytes(probe_pdf("Hengxin DR probe (x) \\ y"))
    checked = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_login_probe_on_an_instance_without_auth_fails_as_not_available(nothing_here: str, tmp_path: Path) -> None:
    context = ProbeContext("d1", nothing_here, "hxt_dr_x", tmp_path)
    with pytest.raises(ProbeFailed) as caught:
        LoginProbe("hengxin-dr-d1").run(context)
    assert caught.value.code == "dr.probe_failed"
    assert "not available" in caught.value.detail and "no auth component" in caught.value.detail


def test_signature_probe_without_a_restored_seal_fails_as_not_available(nothing_here: str, tmp_path: Path) -> None:
    context = ProbeContext("d1", nothing_here, "hxt_dr_x", tmp_path)
    with pytest.raises(ProbeFailed) as caught:
        SignatureProbe(None).run(context)
    assert "not available" in caught.value.detail and "seal" in caught.value.detail


def test_signature_probe_on_an_instance_without_signing_fails_as_not_available(
    nothing_here: str, tmp_path: Path
) -> None:
    context = ProbeContext("d1", nothing_here, "hxt_dr_x", tmp_path)
    with pytest.raises(ProbeFailed) as caught:
        SignatureProbe("dr-probe").run(context)
    assert "not available" in caught.value.detail and "no signing API" in caught.value.detail

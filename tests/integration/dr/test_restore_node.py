"""``hengxin dr restore`` onto a new node, then ``hengxin serve`` on the restored configuration answers /readyz."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from typer.testing import CliRunner

from dr.sandbox import free_port, port_is_free, to_toml
from tests.integration.backup.conftest import BackupWorld
from tests.integration.dr.test_drill import service_of


def test_restored_node_serves_and_is_ready(drill_world: Callable[..., BackupWorld], tmp_path: Path) -> None:
    world = drill_world(check_read_data=False)
    config = tmp_path / "hengxin.toml"
    config.write_text(to_toml(world.platform.settings.model_dump(mode="json")))
    target = tmp_path / "new-node"
    from api.cli import app

    restored = CliRunner().invoke(app, ["--config", str(config), "dr", "restore", "--snapshot", "latest",
                                        "--target", str(target)])
    assert restored.exit_code == 0, restored.output
    restored_config = target / "hengxin.toml"
    assert restored_config.exists() and (target / "data" / "hengxin.db").exists()

    # The operator puts the escrowed secrets back (here: copied from the live secret store).
    service = service_of(world)
    for name in service._needed_secrets(world.platform.settings.model_dump(mode="json")):
        path = target / "secrets" / name
        path.write_text(world.platform.secrets.get(name))
        path.chmod(0o600)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HENGXIN_")}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from api.cli import main; main()", "--config", str(restored_config), "serve",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=target, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        answer: httpx.Response | None = None
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0)
                if answer.status_code == 200:
                    break
            time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, (tmp_path / "serve.log").read_text()[-2000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.close()
    assert port_is_free(port)

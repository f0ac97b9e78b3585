"""Scheduled runs happen once per slot when several nodes serve one PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from backup.service import BACKUP, BackupService, RunOutcome
from core.clock import FrozenClock, isoformat_utc
from tests.fixtures.postgres import PostgresCluster, free_port
from tests.fixtures.restic import ResticRepository

from .conftest import BackupWorld

HENGXIN = str(Path(sys.executable).parent / "hengxin")


def test_two_nodes_reaching_the_same_slot_run_it_once(
    make_backup_world: Callable[..., BackupWorld], postgres_cluster: PostgresCluster
) -> None:
    world = make_backup_world(postgres_cluster.url(postgres_cluster.create_database()), copies=False)
    slot = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.UTC)
    nodes = [
        BackupService(
            world.platform.settings,
            sessions=world.platform.sessions,
            audit=world.platform.require_audit(),
            alerts=world.platform.alerts,
            secrets=world.platform.secrets,
            sources=world.platform.services["backup_sources"],
            clock=FrozenClock(slot + dt.timedelta(seconds=1)),
            node=f"node-{n}",
        )
        for n in (1, 2)
    ]
    barrier = threading.Barrier(2)
    outcomes: dict[str, RunOutcome | None] = {}

    def tick(node: BackupService) -> None:
        barrier.wait()
        outcomes[node.node] = node.run_scheduled(BACKUP, "nightly", slot)

    threads = [threading.Thread(target=tick, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    ran = [outcome for outcome in outcomes.values() if outcome is not None]
    assert len(outcomes) == 2 and len(ran) == 1
    assert ran[0].error is None and ran[0].record.trigger == "schedule"
    assert len(world.service.list_runs()) == 1
    assert len(world.service.snapshots("primary")) == 1
    # A late node asking for the same slot again, or an earlier one, gets nothing; the next slot runs.
    assert nodes[1].run_scheduled(BACKUP, "nightly", slot) is None
    assert nodes[0].run_scheduled(BACKUP, "nightly", slot - dt.timedelta(days=1)) is None
    later = nodes[1].run_scheduled(BACKUP, "nightly", slot + dt.timedelta(days=1))
    assert later is not None and later.error is None


def _config(path: Path, *, database_url: str, data_dir: Path, state_dir: Path, repository: ResticRepository) -> None:
    path.write_text(
        f"""[instance]
data_dir = "{data_dir}"
timezone = "UTC"

[database]
url = "{database_url}"

[logging]
level = "INFO"

[backup]
state_dir = "{state_dir}"
restic_binary = "{repository.binary}"
scheduler_interval_seconds = 0.5

[[backup.repositories]]
name = "primary"
url = "{repository.path}"
password_secret = "repo-primary"

[[backup.jobs]]
name = "every-minute"
repository = "primary"
schedule = "* * * * *"
retention = {{}}
"""
    )


def test_two_serve_processes_on_one_database_run_a_scheduled_job_once(
    postgres_cluster: PostgresCluster, make_restic_repository: Callable[..., ResticRepository], tmp_path: Path
) -> None:
    repository = make_restic_repository("primary")
    database_url = postgres_cluster.url(postgres_cluster.create_database())
    data_dir = tmp_path / "var"
    configs = []
    for name in ("a", "b"):
        config = tmp_path / f"node-{name}.toml"
        _config(
            config,
            database_url=database_url,
            data_dir=data_dir,
            state_dir=tmp_path / f"state-{name}",
            repository=repository,
        )
        configs.append(config)
    env = {**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14"}
    init = subprocess.run(
        [HENGXIN, "--config", str(configs[0]), "init"], capture_output=True, text=True, env=env, timeout=120
    )
    assert init.returncode == 0, init.stderr
    secret = data_dir / "secrets" / "repo-primary"
    secret.write_text(repository.password + "\n")
    secret.chmod(0o600)

    ports = [free_port(), free_port()]
    logs = [tmp_path / "node-a.log", tmp_path / "node-b.log"]
    processes = [
        subprocess.Popen(
            [HENGXIN, "--config", str(config), "serve", "--port", str(port)],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for config, port, log in zip(configs, ports, logs, strict=True)
    ]
    engine = create_engine(database_url)
    try:
        # Generous waits: under CI load start-up and the backup itself can take a minute or more; the
        # assertions below (exactly one run of this slot) do not depend on how long either takes.
        deadline = time.monotonic() + 120
        for port, process in zip(ports, processes, strict=True):
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, "hengxin serve exited"
                assert time.monotonic() < deadline, "hengxin serve did not start"
                time.sleep(0.1)
        # Both schedulers are ticking; the next minute is the slot (the one after if it is too close).
        now = time.time()
        slot = (int(now) // 60 + 1) * 60
        if slot - now < 2:
            slot += 60
        deadline = slot + 150  # a run's row is written when it finishes
        runs: list = []
        while time.time() < deadline:
            with engine.connect() as connection:
                runs = connection.execute(
                    text("SELECT node, result, started_at FROM backup_runs WHERE trigger = 'schedule'")
                ).all()
            if runs:
                break
            time.sleep(0.25)
        assert runs, "the scheduled job did not run"
        time.sleep(min(5.0, max(0.0, slot + 50 - time.time())))  # the other node would have run by now
        with engine.connect() as connection:
            runs = connection.execute(
                text("SELECT node, result FROM backup_runs WHERE trigger = 'schedule' AND started_at < :end"),
                {"end": dt.datetime.fromtimestamp(slot + 60, dt.UTC)},
            ).all()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        engine.dispose()

    assert len(runs) == 1, runs
    assert runs[0].result == "success"
    pids = {str(p.pid) for p in processes}
    assert runs[0].node.rsplit(":", 1)[1] in pids
    outputs = [log.read_text() for log in logs]
    assert not [output for output in outputs if "Traceback" in output]
    assert repository.password not in "".join(outputs)
    # Count claims of this slot only: a slow shutdown under load may already reach the next one.
    slot_text = isoformat_utc(dt.datetime.fromtimestamp(slot, dt.UTC))
    claims = [output.count(f"for {slot_text} claimed by") for output in outputs]
    assert sorted(claims) == [0, 1], claims
    limit = dt.datetime.fromtimestamp(slot + 60, dt.UTC)
    snapshots = [s for s in repository.client().snapshots() if s.time < limit]
    assert len(snapshots) == 1 and "job:every-minute" in snapshots[0].tags

"""The `hengxin` command as an operator runs it: one readable line per error, meaningful exit codes."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.secret_scan import find_private_keys, find_strings

HENGXIN = str(Path(sys.executable).parent / "hengxin")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14", **(env or {})}
    return subprocess.run([HENGXIN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    result = run("--config", "var/hengxin.toml", "init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_init_creates_a_private_instance_with_no_clear_keys(instance: Path) -> None:
    var = instance / "var"
    token_file = var / "secrets" / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert (var / "hengxin.db").stat().st_mode & 0o077 == 0
    assert find_private_keys(var) == []
    # The token and passphrase live only in their 0600 files.
    token = token_file.read_bytes().strip()
    passphrase = (var / "secrets" / "master-passphrase").read_bytes().strip()
    others = [p for p in var.rglob("*") if p.is_file() and p.parent.name != "secrets"]
    for path in others:
        blob = path.read_bytes()
        assert token not in blob and passphrase not in blob, path
    assert find_strings(var / "keys", [passphrase]) == []


def test_init_is_idempotent(instance: Path) -> None:
    again = run("--config", "var/hengxin.toml", "init", "--if-needed", cwd=instance)
    assert again.returncode == 0
    assert "already initialised" in again.stdout


def test_wrong_master_passphrase_gives_one_line_and_exit_78(instance: Path) -> None:
    (instance / "var" / "secrets" / "master-passphrase").write_text("not the passphrase")
    result = run("--config", "var/hengxin.toml", "audit", "verify", cwd=instance)
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert lines == ["hengxin: error: the master passphrase does not open the key store [keys.wrong_passphrase]"]
    assert "Traceback" not in result.stderr + result.stdout


def test_insecure_secret_file_is_refused(instance: Path) -> None:
    (instance / "var" / "secrets" / "master-passphrase").chmod(0o644)
    result = run("--config", "var/hengxin.toml", "keys", "list", cwd=instance)
    assert result.returncode == 78
    assert "[secrets.insecure_file]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "hengxin.toml"
    config.write_text("[server]\nprot = 8000\n")
    result = run("--config", str(config), "config", "check", cwd=tmp_path)
    assert result.returncode == 78
    assert "unknown configuration key 'server.prot'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_sample_passes_config_check(tmp_path: Path) -> None:
    sample = run("config", "sample", cwd=tmp_path)
    assert sample.returncode == 0
    (tmp_path / "sample.toml").write_text(sample.stdout)
    check = run("config", "check", str(tmp_path / "sample.toml"), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "valid" in check.stdout


def test_audit_verify_exit_codes(instance: Path) -> None:
    ok = run("--config", "var/hengxin.toml", "audit", "verify", cwd=instance)
    assert ok.returncode == 0, ok.stderr
    assert "audit chain intact" in ok.stdout
    engine = create_engine(f"sqlite:///{instance / 'var' / 'hengxin.db'}")
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER audit_records_no_update"))
        connection.execute(text("UPDATE audit_records SET target = 'forged' WHERE sequence = 1"))
    engine.dispose()
    broken = run("--config", "var/hengxin.toml", "audit", "verify", cwd=instance)
    assert broken.returncode == 1
    assert "first bad sequence number: 1" in broken.stderr
    assert "[audit.chain_broken]" in broken.stderr


def test_audit_verify_with_a_checkpoint_from_the_logs(instance: Path) -> None:
    checkpoint = run("--config", "var/hengxin.toml", "audit", "checkpoint", cwd=instance)
    assert checkpoint.returncode == 0
    anchor = instance / "anchor.json"
    anchor.write_text(checkpoint.stdout)
    ok = run("--config", "var/hengxin.toml", "audit", "verify", "--anchor", str(anchor), cwd=instance)
    assert ok.returncode == 0, ok.stderr
    garbage = instance / "garbage.json"
    garbage.write_text("{not json")
    bad = run("--config", "var/hengxin.toml", "audit", "verify", "--anchor", str(garbage), cwd=instance)
    assert bad.returncode == 1 and "[request.invalid]" in bad.stderr


def test_audit_export_writes_json_lines(instance: Path) -> None:
    out = instance / "export.jsonl"
    result = run("--config", "var/hengxin.toml", "audit", "export", "--since", "2000-01-01", "-o", str(out),
                 cwd=instance)
    assert result.returncode == 0, result.stderr
    import json

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["record"]["sequence"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[0]["record"]["action"] == "token.create"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_serve(instance: Path, path: str = "/healthz", timeout: float = 120,
                 **env_overrides: str) -> tuple[subprocess.Popen[str], int]:
    """Start ``hengxin serve`` in ``instance`` on a free port and wait until ``path`` answers 200."""
    port = _free_port()
    env = {**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14", "HENGXIN_SERVER__PORT": str(port), **env_overrides}
    process = subprocess.Popen([HENGXIN, "--config", "var/hengxin.toml", "serve"], cwd=instance, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise AssertionError(process.stdout.read() if process.stdout else "hengxin serve exited")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"hengxin serve did not answer {path} within {timeout} s")
        time.sleep(0.2)


def test_serve_answers_health_and_authenticated_requests(instance: Path) -> None:
    process, port = _start_serve(instance)
    try:
        token = (instance / "var" / "secrets" / "admin-token").read_text().strip()
        records = httpx.get(f"http://127.0.0.1:{port}/api/v1/audit", headers={"Authorization": f"Bearer {token}"})
        assert records.status_code == 200 and records.json()["items"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the service manager sees why it stopped.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in output
    assert token not in output
    assert "Traceback" not in output


def test_escrow_split_and_combine_restore_the_master_passphrase(instance: Path) -> None:
    passphrase_file = instance / "var" / "secrets" / "master-passphrase"
    original = passphrase_file.read_text()
    split_result = run("--config", "var/hengxin.toml", "escrow", "split", "--secret", "master-passphrase",
                       "-m", "2", "-n", "3", "--out-dir", "shares", cwd=instance)
    assert split_result.returncode == 0, split_result.stderr
    assert original.strip() not in split_result.stdout + split_result.stderr
    share_files = sorted((instance / "shares").iterdir())
    assert len(share_files) == 3 and all(p.stat().st_mode & 0o777 == 0o600 for p in share_files)
    passphrase_file.unlink()  # the disaster: the passphrase is gone
    too_few = run("--config", "var/hengxin.toml", "escrow", "combine", str(share_files[0]),
                  "--put-secret", "master-passphrase", cwd=instance)
    assert too_few.returncode == 1 and "[escrow.invalid]" in too_few.stderr
    assert not passphrase_file.exists()
    combined = run("--config", "var/hengxin.toml", "escrow", "combine", str(share_files[0]), str(share_files[2]),
                   "--put-secret", "master-passphrase", cwd=instance)
    assert combined.returncode == 0, combined.stderr
    assert passphrase_file.read_text().strip() == original.strip()
    assert run("--config", "var/hengxin.toml", "audit", "verify", cwd=instance).returncode == 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_serve_with_two_workers_shares_one_instance_and_stops_cleanly(instance: Path) -> None:
    process, port = _start_serve(instance, "/readyz", HENGXIN_SERVER__WORKERS="2")
    base = f"http://127.0.0.1:{port}"
    try:
        workers = [p for p in _children(process.pid)
                   if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2
        token = (instance / "var" / "secrets" / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        # Writes through both workers (new connections spread over them) land in one audit chain.
        for i in range(20):
            with httpx.Client(base_url=base, headers=headers) as client:
                body = {"name": f"worker-test-{i}", "permissions": ["audit.read"]}
                created = client.post("/api/v1/tokens", json=body)
                assert created.status_code == 201, created.text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in output
    assert all(not Path(f"/proc/{p}").exists() for p in workers), "a worker outlived its supervisor"
    verified = run("--config", "var/hengxin.toml", "audit", "verify", cwd=instance)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _established_by(pids: list[int], port: int) -> dict[int, int]:
    """How many established connections to ``port`` each of ``pids`` holds (from /proc, no ss needed)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
    counts = dict.fromkeys(pids, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                counts[inodes[fields[9]]] += 1
    return counts


def test_workers_share_connections_and_a_dead_worker_is_replaced(instance: Path) -> None:
    process, port = _start_serve(instance, "/readyz", HENGXIN_SERVER__WORKERS="2")
    base = f"http://127.0.0.1:{port}"
    try:
        workers = [p for p in _children(process.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2
        # A burst of keep-alive connections, as a proxy's pool opens them: each worker gets a share (one socket
        # per worker with SO_REUSEPORT; with one shared socket the first worker awake took them all).
        clients = [httpx.Client(base_url=base) for _ in range(32)]
        try:
            for client in clients:
                assert client.get("/healthz").status_code == 200
            shares = _established_by(workers, port)
        finally:
            for client in clients:
                client.close()
        assert sum(shares.values()) == 32
        assert min(shares.values()) >= 4, shares
        # A second server on the same port is refused instead of silently taking half the traffic.
        second = subprocess.run([HENGXIN, "--config", "var/hengxin.toml", "serve"], cwd=instance, timeout=120,
                                env={**os.environ, "HENGXIN_SERVER__PORT": str(port), "HENGXIN_SERVER__WORKERS": "2"},
                                capture_output=True, text=True)
        assert second.returncode != 0
        assert "is another server running?" in second.stderr and "Traceback" not in second.stderr
        # A worker killed outright is replaced, and the service keeps answering.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        replaced: list[int] = []
        while time.monotonic() < deadline:
            current = [p for p in _children(process.pid)
                       if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
            replaced = [p for p in current if p not in workers]
            if len(current) == 2 and replaced:
                break
            time.sleep(0.2)
        assert len(replaced) == 1 and process.poll() is None
        with httpx.Client(base_url=base) as client:
            assert client.get("/healthz").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "a worker died; starting another" in output
    assert all(not Path(f"/proc/{p}").exists() for p in [*workers, *replaced])


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    from api.serve import Supervisor

    supervisor = Supervisor(str(tmp_path / "missing.toml"), "127.0.0.1", _free_port(), 2, {"log_config": None})
    started = time.monotonic()
    assert supervisor.run() == 1  # not restarted over and over
    assert time.monotonic() - started < 120
    assert all(not process.is_alive() for process, _ in supervisor._processes.values())

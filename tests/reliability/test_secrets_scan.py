"""Secrets across a full scenario: init, issue, log in, sign, back up, restore; then scan everything left behind.

The secret values are known to the test: the master passphrase and the
repository password are put in the secret store before ``hengxin init``; the
administrator's password is read from the secret store after it; the
PKCS #12 password is chosen here; the access token, refresh token, client
secret and TOTP secret are read from the answers that hand them out once.
``hengxin serve`` and every CLI command run as subprocesses at DEBUG level
with their output captured; restic runs through a wrapper that records its
argv, environment and ``/proc/self/cmdline``; the server's command line (and
its children's) is sampled from ``/proc`` during the run.  Afterwards no log
line, database file, restored backup file or recorded command line may hold
a private key in clear or any of the secret strings.  A control plants one
secret in a copy of the scanned tree and checks that the scan finds it.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shlex
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fixtures.restic import ResticRepository
from tests.fixtures.signing import minimal_pdf
from tests.integration.auth.conftest import code_at, totp_secret
from tests.reliability.conftest import ServeNode, free_port, run_cli, write_config
from tests.secret_scan import find_private_keys, find_strings

MASTER_PASSPHRASE = "master-Pass-" + os.urandom(12).hex()
PKCS12_PASSWORD = "p12-Pass-" + os.urandom(12).hex()


def _proc_cmdlines(root_pid: int) -> list[str]:
    """The command lines of ``root_pid`` and its descendants, NUL bytes shown as spaces."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    lines, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        try:
            lines.append((Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
        todo.extend(children.get(pid, []))
    return lines


def _code_for_next_step(secret: bytes) -> str:
    """A code for a 30-second step not used before (a reused step is refused as a replay)."""
    now = dt.datetime.now(dt.UTC)
    step_start = now.replace(second=(now.second // 30) * 30, microsecond=0)
    wait = (step_start + dt.timedelta(seconds=30) - now).total_seconds()
    threading.Event().wait(wait + 0.05)
    return code_at(secret, dt.datetime.now(dt.UTC))


@pytest.mark.slow
def test_no_secret_or_private_key_in_logs_database_backup_or_command_lines(
    tmp_path: Path,
    make_restic_repository: Callable[..., ResticRepository],
    make_restic_wrapper: Callable[..., Path],
) -> None:
    repository = make_restic_repository("primary")
    record = tmp_path / "evidence" / "restic-invocations.log"
    record.parent.mkdir()
    wrapper = make_restic_wrapper(
        before=(f'{{ echo "pid $$"; for a in "$@"; do printf "arg %s\\n" "$a"; done; env | sed "s/^/env /"; '
                f'tr "\\0" " " < /proc/$$/cmdline; echo; }} >> {shlex.quote(str(record))}')
    )
    data_dir = tmp_path / "var"
    secrets_dir = data_dir / "secrets"
    secrets_dir.mkdir(parents=True, mode=0o700)
    data_dir.chmod(0o700)
    for name, value in (("master-passphrase", MASTER_PASSPHRASE), ("repo-primary", repository.password)):
        (secrets_dir / name).write_text(value + "\n")
        (secrets_dir / name).chmod(0o600)
    port = free_port()
    backup = f"""restic_binary = "{wrapper}"
state_dir = "{tmp_path / 'backup-state'}"

[[backup.repositories]]
name = "primary"
url = "{repository.path}"
password_secret = "repo-primary"

[[backup.jobs]]
name = "nightly"
repository = "primary"
"""
    config = write_config(tmp_path / "hengxin.toml", data_dir=data_dir, port=port)
    base_config = config.read_text()
    config.write_text(base_config + f"\n[backup]\n{backup}")
    outputs: list[str] = []

    def cli(*args: str) -> str:
        result = run_cli(config, "--log-level", "DEBUG", *args)
        outputs.extend([result.stdout, result.stderr])
        assert result.returncode == 0, (args, result.stdout[-1000:], result.stderr[-2000:])
        return result.stdout

    cli("init")
    admin_password = (secrets_dir / "admin-password").read_text().strip()
    admin_token = (secrets_dir / "admin-token").read_text().strip()
    assert (secrets_dir / "master-passphrase").read_text().strip() == MASTER_PASSPHRASE  # init kept ours
    cli("user", "add", "robot", "--name", "Robot", "--service")
    seal_out = cli("sign", "seal-create", "office", "--subject-o", "某某县人民政府")
    [certificate_line] = [line for line in seal_out.splitlines() if line.strip().startswith("certificate")]
    config.write_text(base_config + f"""
[signing]
[[signing.seals]]
name = "office"
{certificate_line.strip()}
allowed_tokens = ["bootstrap-admin"]

[backup]
{backup}""")

    node = ServeNode(config, port, tmp_path / "evidence" / "serve.log")
    node.start()
    cmdlines: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        assert node.process is not None
        while not stop.is_set():
            cmdlines.extend(_proc_cmdlines(node.process.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    bodies: list[str] = []
    try:
        with httpx.Client(base_url=node.url, timeout=60) as client:
            admin = {"Authorization": f"Bearer {admin_token}"}
            issued = client.post("/api/v1/certificates", headers=admin, json={
                "profile": "server-tls", "subject": {"CN": "secrets.example.gov.cn"},
                "sans": {"dns": ["secrets.example.gov.cn"]},
                "key": {"mode": "server", "pkcs12_password": PKCS12_PASSWORD}})
            assert issued.status_code == 201, issued.text

            first = client.post("/api/v1/auth/login", json={"login": "admin", "password": admin_password})
            assert first.status_code == 200, first.text
            bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
            enrolled = client.post("/api/v1/auth/totp", headers=bearer)
            assert enrolled.status_code == 201, enrolled.text
            secret = totp_secret(enrolled.json()["otpauth_uri"])
            confirmed = client.post("/api/v1/auth/totp/verify", headers=bearer,
                                    json={"code": code_at(secret, dt.datetime.now(dt.UTC))})
            assert confirmed.status_code == 204, confirmed.text
            strong = client.post("/api/v1/auth/login", json={"login": "admin", "password": admin_password,
                                                             "totp": _code_for_next_step(secret)})
            assert strong.status_code == 200, strong.text
            access_token, refresh_token = strong.json()["access_token"], strong.json()["refresh_token"]
            refreshed = client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                          "refresh_token": refresh_token})
            assert refreshed.status_code == 200, refreshed.text

            created = client.post("/api/v1/auth/clients/robot/secret", headers=admin)
            assert created.status_code == 201, created.text
            client_secret = created.json()["client_secret"]
            robot = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=("robot", client_secret))
            assert robot.status_code == 200, robot.text

            signed = client.post("/api/v1/signatures/pdf", headers=admin, data={"seal": "office", "level": "B-T"},
                                 files={"file": ("document.pdf", minimal_pdf(), "application/pdf")})
            assert signed.status_code == 200, signed.text
            bodies.append(client.get("/api/v1/audit", headers=admin, params={"limit": 500}).text)

        cli("backup", "run", "nightly")
        restored = tmp_path / "restored"
        cli("backup", "restore", "nightly", str(restored))
    finally:
        stop.set()
        sampler.join(10)
        node.stop()

    assert any("serve" in line for line in cmdlines)  # the sampler saw the server
    assert "arg backup" in record.read_text() and "arg restore" in record.read_text()
    evidence = tmp_path / "evidence"
    (evidence / "cli-output.log").write_text("\n".join(outputs))
    (evidence / "cmdlines.log").write_text("\n".join(sorted(set(cmdlines))))
    (evidence / "audit-response.json").write_text("\n".join(bodies))
    database = evidence / "database"
    database.mkdir()
    for path in data_dir.glob("*.db*"):
        shutil.copy2(path, database / path.name)
    assert list(database.iterdir()), "no database file found"
    assert list(restored.rglob("*")), "the restore produced no files"

    secrets = {
        "master passphrase": MASTER_PASSPHRASE, "administrator password": admin_password,
        "repository password": repository.password, "client secret": client_secret,
        "bootstrap token": admin_token, "access token": access_token, "refresh token": refresh_token,
        "refreshed access token": refreshed.json()["access_token"],
        "refreshed refresh token": refreshed.json()["refresh_token"],
        "client access token": robot.json()["access_token"], "PKCS #12 password": PKCS12_PASSWORD,
        "TOTP secret (base32)": base64.b32encode(secret).decode().rstrip("="), "TOTP secret (hex)": secret.hex(),
    }
    needles = [value.encode() for value in secrets.values() if value]
    scanned = [evidence, restored]

    keys = [hit for root in scanned for hit in find_private_keys(root)]
    leaks = [hit for root in scanned for hit in find_strings(root, needles)]
    named = [name for name, value in secrets.items()
             for root in scanned for hit in find_strings(root, [value.encode()]) if value]
    assert not keys, keys
    assert not leaks, (leaks, sorted(set(named)))

    # The control: the same scan finds a secret and a private key planted in a copy of the evidence.
    planted = tmp_path / "planted"
    shutil.copytree(evidence, planted)
    with (planted / "serve.log").open("a") as log:
        log.write(f"oops refresh_token={refresh_token}\n")
    (planted / "key.pem").write_bytes(_sample_key_pem())
    assert find_strings(planted, [refresh_token.encode()]) == [f"{planted / 'serve.log'}: contains a secret"]
    assert find_private_keys(planted) == [f"{planted / 'key.pem'}: PEM private key"]


def _sample_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

"""An SFTP repository against a real OpenSSH server on 127.0.0.1, started by the test with its own keys."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backup.restic import Restic
from tests.fixtures.postgres import free_port

from .conftest import BackupWorld

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SSHServer:
    port: int
    client_key: Path
    known_hosts: Path

    def sftp_command(self) -> str:
        """The ssh command line restic runs (``-o sftp.command=...``): this port, key and known-hosts file only."""
        return (
            f"ssh -F /dev/null -p {self.port} -i {self.client_key} -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.known_hosts} root@127.0.0.1 -s sftp"
        )


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[SSHServer]:
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        pytest.fail("OpenSSH is missing: apt-get install openssh-server openssh-client")
    directory = tmp_path / "sshd"
    directory.mkdir(mode=0o700)
    host_key = directory / "host_ed25519"
    client_key = directory / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    (directory / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    port = free_port()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"sshd exited: {process.stderr.read() if process.stderr else ''}")
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not listen in time")
                time.sleep(0.05)
        yield SSHServer(port, client_key, known_hosts)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_backup_to_an_sftp_repository_restores_and_verifies(
    make_backup_world: Callable[..., BackupWorld], ssh_server: SSHServer, tmp_path: Path
) -> None:
    # The repository is a template copy on this machine, reached only through sshd.
    remote = tmp_path / "remote"
    world = make_backup_world(copies=False)
    shutil.move(str(world.primary.path), remote)
    world.platform.settings.backup.repositories[0].url = f"sftp:root@127.0.0.1:{remote}"
    world.platform.settings.backup.repositories[0].options = {"sftp.command": ssh_server.sftp_command()}
    service = type(world.service)(
        world.platform.settings,
        sessions=world.platform.sessions,
        audit=world.platform.require_audit(),
        alerts=world.platform.alerts,
        secrets=world.platform.secrets,
        sources=world.platform.services["backup_sources"],
    )

    outcome = service.run_backup("nightly")

    assert outcome.error is None, outcome.record.error_message
    assert (remote / "snapshots").exists() and any((remote / "snapshots").iterdir())
    target = tmp_path / "restored"
    target.mkdir()
    manifest = service.restore("nightly", target)
    assert manifest.audit_head is not None and "database/hengxin.db" in manifest.files


def test_an_sftp_repository_is_initialised_through_ssh(
    ssh_server: SSHServer, restic_binary: str, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("sftp-repository-password\n")
    password_file.chmod(0o600)
    remote = tmp_path / "fresh-remote"
    restic = Restic(
        f"sftp:root@127.0.0.1:{remote}",
        password_file,
        binary=restic_binary,
        cache_dir=tmp_path / "cache",
        options={"sftp.command": ssh_server.sftp_command()},
        timeout=60,
    )

    assert restic.init()
    assert (remote / "config").exists()
    assert restic.snapshots() == []

    # A server whose host key does not match the known-hosts file is refused.
    impostor = tmp_path / "impostor_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True, timeout=30)
    wrong_hosts = tmp_path / "wrong_known_hosts"
    wrong_hosts.write_text(f"[127.0.0.1]:{ssh_server.port} {impostor.with_suffix('.pub').read_text()}")
    refusing = Restic(
        f"sftp:root@127.0.0.1:{remote}",
        password_file,
        binary=restic_binary,
        cache_dir=tmp_path / "cache",
        options={"sftp.command": ssh_server.sftp_command().replace(str(ssh_server.known_hosts), str(wrong_hosts))},
        timeout=60,
    )
    from backup.errors import BackupError

    with pytest.raises(BackupError):
        refusing.snapshots()

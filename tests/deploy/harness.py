"""Apply the Ansible roles to this machine under a temporary prefix and run what they render.

The deployment test sets ``hengxin_manage_services=false`` (no systemd as
PID 1 here), so it starts each service itself with the exact command line of
its unit's ``ExecStart`` (and ``ExecStartPre``), as the unit's ``User=`` and
``Group=``, in its ``WorkingDirectory=``, with its ``Environment=``.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPOSITORY / "ansible"
PLAYBOOKS = ("site.yml", "upgrade.yml")
INVENTORIES = ("single", "datacentre")
ANSIBLE_PLAYBOOK = "/usr/bin/ansible-playbook"  # Debian's ansible, with its collections

BASE_DN = "dc=deploy,dc=test"
SYNC_DN = f"cn=hengxin-sync,{BASE_DN}"


def require_binary(name: str, package: str) -> str:
    """The path of ``name``, or a failure naming the Debian package that provides it."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is missing: apt-get install {package}")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ansible_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PYTHONWARNINGS="ignore",
        # Per-task durations in the log (test/ansible.log under the prefix).
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
    )
    # Debian's ansible-playbook must not pick up the project's virtualenv.
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p) or "/usr/bin:/bin"
    return env


@dataclass
class Unit:
    """The parts of a rendered systemd unit the test needs."""

    path: Path
    exec_start: list[str]
    exec_start_pre: list[list[str]] = field(default_factory=list)
    user: str | None = None
    group: str | None = None
    working_directory: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    settings: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, path: Path, instance: str | None = None) -> Unit:
        """Read ``path``; for a template unit (``name@.service``), ``instance`` replaces ``%i``."""
        settings: dict[str, list[str]] = {}
        text = path.read_text(encoding="utf-8")
        if instance is not None:
            assert path.stem.endswith("@"), f"{path.name} is not a template unit"
            text = text.replace("%i", instance)
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";", "[")) or "=" not in line:
                continue
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
        if len(settings.get("ExecStart", [])) != 1:
            raise AssertionError(f"{path}: expected exactly one ExecStart")
        environment: dict[str, str] = {}
        for entry in settings.get("Environment", []):
            for assignment in _systemd_split(entry):
                name, value = assignment.split("=", 1)
                environment[name] = value
        return cls(
            path=path,
            exec_start=_systemd_split(settings["ExecStart"][0]),
            exec_start_pre=[_systemd_split(value) for value in settings.get("ExecStartPre", [])],
            user=settings.get("User", [None])[-1],
            group=settings.get("Group", [None])[-1],
            working_directory=settings.get("WorkingDirectory", [None])[-1],
            environment=environment,
            settings=settings,
        )


def _systemd_split(value: str) -> list[str]:
    """Split a command line the way systemd does for the forms our units use.

    Only the ``%%`` specifier (a literal percent sign) is used in the units;
    any other specifier would mean the test runs something else than systemd.
    """
    if value[:1] in "-@+!:":
        raise AssertionError(f"command prefix {value[0]!r} is not supported by the test")
    if re.search(r"%[^%]", value.replace("%%", "")):
        raise AssertionError(f"unexpected systemd specifier in {value!r}")
    return [word.replace("%%", "%") for word in shlex.split(value)]


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


class ServiceRunner:
    """Starts units' command lines and stops everything it started."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.services: list[Service] = []

    def start(self, unit: Unit) -> Service:
        user = pwd.getpwnam(unit.user) if unit.user else None
        group = grp.getgrnam(unit.group).gr_gid if unit.group else (user.pw_gid if user else None)
        environment = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
        if user:
            environment.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
        environment.update(unit.environment)
        log = self.log_dir / f"{unit.path.stem}.log"
        options: dict[str, Any] = dict(
            cwd=unit.working_directory or "/",
            env=environment,
            user=user.pw_uid if user else None,
            group=group,
            extra_groups=[] if user else None,
        )
        for pre in unit.exec_start_pre:
            subprocess.run(pre, check=True, capture_output=True, **options)  # type: ignore[call-overload]
        with log.open("ab") as handle:
            process = subprocess.Popen(  # type: ignore[call-overload]
                unit.exec_start, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, **options
            )
        service = Service(unit.path.stem, process, log)
        self.services.append(service)
        return service

    def stop_all(self) -> None:
        for service in reversed(self.services):
            if service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
        for service in reversed(self.services):
            try:
                service.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait(timeout=10)
        self.services.clear()


def wait_until(check, what: str, timeout: float = 60.0, service: Service | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and service.process.poll() is not None:
            raise AssertionError(f"{service.name} exited with {service.process.returncode}:\n{service.log.read_text()}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    detail = f"\n{service.log.read_text()}" if service is not None else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def run_playbook(playbook: str, variables_file: Path, log: Path, *extra: str) -> str:
    """Run a playbook against the single-server inventory; return its output, fail with it."""
    command = [
        ANSIBLE_PLAYBOOK,
        "-i",
        str(ANSIBLE_DIR / "inventories/single/hosts.yml"),
        "-e",
        f"@{variables_file}",
        playbook,
        *extra,
    ]
    result = subprocess.run(
        command, cwd=ANSIBLE_DIR, env=ansible_environment(), capture_output=True, text=True, timeout=900
    )
    output = result.stdout + result.stderr
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {shlex.join(command)}\n{output}\n")
    if result.returncode != 0:
        raise AssertionError(f"{playbook} {' '.join(extra)} failed:\n{output[-6000:]}")
    return output


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of the one host."""
    match = re.search(r"^\S+\s*:\s*(ok=\d+.*)$", output.split("PLAY RECAP", 1)[1], re.MULTILINE)
    assert match, output[-2000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def write_variables(path: Path, variables: dict[str, object]) -> None:
    path.write_text(json.dumps(variables, indent=2), encoding="utf-8")
    path.chmod(0o600)

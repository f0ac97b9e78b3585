"""Helpers for the directory service tests: a platform with the directory wired in, optionally publishing to slapd."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.components.directory import directory_publisher, directory_service
from api.platform import Platform, initialise, open_platform
from core.clock import Clock, FrozenClock, utc_now
from core.config import Settings
from core.store.models import AuditRecordRow
from directory.models import OutboxRow, UserRow
from directory.passwords import PasswordHasher
from directory.publisher import DirectoryPublisher
from directory.service import DirectoryService
from tests.fixtures.slapd import BASE_DN, HengxinSlapd
from tests.helpers import make_settings

# Cheap argon2id for most tests; one test uses the default (t=2, m=19 MiB).
FAST_PASSWORDS: dict[str, Any] = {"argon2_time_cost": 1, "argon2_memory_kib": 256, "argon2_parallelism": 1}
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
GOOD_PASSWORD = "Correct-Horse-9"  # noqa: S105 - test credential


def refusing_url() -> str:
    """An ldap:// URL on a loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ldap://127.0.0.1:{port}"


def directory_settings(
    tmp_path: Path,
    database_url: str = "",
    *,
    slapd: HengxinSlapd | None = None,
    ldap_url: str | None = None,
    passwords: dict[str, Any] | None = None,
    directory: dict[str, Any] | None = None,
) -> Settings:
    """Settings for a test platform; with ``slapd`` (or ``ldap_url``) LDAP publishing is enabled."""
    directory_section: dict[str, Any] = {}
    if slapd is not None or ldap_url is not None:
        directory_section = {
            "enabled": True,
            "ldap_url": ldap_url or (slapd.ldap_uri if slapd is not None else ""),
            "base_dn": BASE_DN,
            "bind_dn": slapd.root_dn if slapd is not None else "cn=manager,dc=gov,dc=example",
            "network_timeout_seconds": 1.0,
            "operation_timeout_seconds": 5.0,
            "alert_after_attempts": 3,
            "max_attempts": 5,
        }
    directory_section.update(directory or {})
    return make_settings(
        tmp_path / "var",
        database_url,
        passwords={**FAST_PASSWORDS, **(passwords or {})},
        directory=directory_section,
    )


def open_directory_platform(
    settings: Settings, *, clock: Clock = utc_now, bind_password: str | None = "unused-password"
) -> Platform:
    """Initialise an instance and open it; the LDAP bind password goes to the secret store first."""
    initialise(settings, clock=clock)
    platform = open_platform(settings, clock=clock)
    if bind_password is not None:
        platform.secrets.put(settings.directory.bind_password_secret, bind_password)
    return platform


def slapd_platform(tmp_path: Path, slapd: HengxinSlapd, database_url: str = "", **kwargs: Any) -> Platform:
    settings = directory_settings(tmp_path, database_url, slapd=slapd, **kwargs)
    return open_directory_platform(settings, bind_password=slapd.root_pw)


def service_of(platform: Platform) -> DirectoryService:
    return directory_service(platform)


def publisher_of(platform: Platform) -> DirectoryPublisher:
    publisher = directory_publisher(platform)
    assert publisher is not None, "publishing is not enabled"
    return publisher


def frozen_clock() -> FrozenClock:
    return FrozenClock(START)


def audit_count(platform: Platform) -> int:
    with platform.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditRecordRow)) or 0


def user_count(platform: Platform) -> int:
    with platform.transaction() as session:
        return session.scalar(select(func.count()).select_from(UserRow)) or 0


def outbox_rows(platform: Platform) -> list[OutboxRow]:
    with platform.transaction() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.sequence)))


def audit_records(platform: Platform, action: str) -> list[Any]:
    with platform.transaction() as session:
        return platform.require_audit().records(session, action=action)


class CountingHasher(PasswordHasher):
    """A hasher that counts its calls, to show an unknown login costs the same argon2 work."""

    def __init__(self, original: PasswordHasher) -> None:
        super().__init__(original.parameters)
        self.dummy_hash()  # made once, before counting starts
        self.calls: collections.Counter[str] = collections.Counter()

    def hash(self, password: str) -> str:
        if hasattr(self, "calls"):
            self.calls["hash"] += 1
        return super().hash(password)

    def matches(self, password_hash: str, password: str) -> bool:
        self.calls["matches"] += 1
        return super().matches(password_hash, password)


# -- the command line, in process -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CLIResult:
    code: int
    stdout: str
    stderr: str


def write_config(path: Path, settings: Settings) -> Path:
    """A TOML file holding the sections of ``settings`` the directory tests change."""
    lines = [
        "[instance]",
        f'data_dir = "{settings.data_dir}"',
        "[keys]",
        f"scrypt_log2_n = {settings.keys.scrypt_log2_n}",
        "[database]",
        f'url = "{settings.database.url}"',
        "[passwords]",
    ]
    lines += [f"{key} = {value}" for key, value in settings.passwords.model_dump().items()]
    directory = settings.directory.model_dump(exclude={"federation", "ca_file"})
    lines.append("[directory]")
    lines += [f"{key} = {json.dumps(value)}" for key, value in directory.items()]
    for federation in settings.directory.federation:
        lines.append("[[directory.federation]]")
        values = federation.model_dump(exclude={"ca_file", "attributes"})
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> CLIResult:
    """Run ``hengxin --config CONFIG ARGS`` through the real entry point (error handling included)."""
    from api.cli import main

    capsys.readouterr()
    saved, umask = sys.argv, os.umask(0o022)
    os.umask(umask)
    sys.argv = ["hengxin", "--config", str(config), *args]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0) if not isinstance(e.code, str) else 1
    finally:
        sys.argv = saved
        os.umask(umask)  # main() narrows it for the process
    captured = capsys.readouterr()
    return CLIResult(code, captured.out, captured.err)

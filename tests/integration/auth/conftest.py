"""Fixtures for authentication: an initialised platform with a frozen clock, an HTTP client, and users."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, initialise, open_platform
from core.clock import FrozenClock
from directory import totp
from directory.auth import AuthService
from directory.service import DirectoryService
from tests.helpers import make_settings

PASSWORD = "Correct-Horse-7"
FAST_PASSWORDS: dict[str, Any] = {
    "argon2_time_cost": 1, "argon2_memory_kib": 256, "argon2_parallelism": 1,
    "lockout_threshold": 3, "source_threshold": 1000,
}
PROXY = ("10.0.0.5", 1234)


@dataclasses.dataclass
class AuthPlatform:
    platform: Platform
    clock: FrozenClock
    client: TestClient

    @property
    def directory(self) -> DirectoryService:
        service: DirectoryService = self.platform.services["directory"]
        return service

    @property
    def auth(self) -> AuthService:
        service: AuthService = self.platform.services["auth"]
        return service

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.platform.secrets.get(ADMIN_TOKEN_SECRET)}"}

    def person(self, login: str, *roles: str) -> None:
        self.directory.create_user("test", login=login, display_name=login, password=PASSWORD)
        for role in roles:
            self.directory.grant_role("test", login, role)

    def login(self, login: str, password: str = PASSWORD, **extra: Any) -> Any:
        return self.client.post("/api/v1/auth/login", json={"login": login, "password": password, **extra})

    def bearer(self, login: str) -> dict[str, str]:
        response = self.login(login)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


def totp_secret(uri: str) -> bytes:
    encoded = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    return base64.b32decode(encoded + "=" * (-len(encoded) % 8))


def code_at(secret: bytes, moment: dt.datetime) -> str:
    return totp.totp(secret, moment)


def _auth_platform(tmp_path: Path, database_url: str = "") -> Iterator[AuthPlatform]:
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    settings = make_settings(tmp_path / "var", database_url, passwords=FAST_PASSWORDS,
                             server={"trusted_proxies": ["10.0.0.0/8"]}, auth={"initial_admin_login": "admin"})
    initialise(settings, clock=clock)
    platform = open_platform(settings, clock=clock)
    app = create_app(settings, platform)
    try:
        with TestClient(app) as client:
            yield AuthPlatform(platform, clock, client)
    finally:
        platform.close()


@pytest.fixture
def auth_platform(tmp_path: Path) -> Iterator[AuthPlatform]:
    yield from _auth_platform(tmp_path)


@pytest.fixture
def postgres_auth_platform(tmp_path: Path, postgres_url: str) -> Iterator[AuthPlatform]:
    yield from _auth_platform(tmp_path, postgres_url)

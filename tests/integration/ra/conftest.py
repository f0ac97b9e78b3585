"""Fixtures for the registration authority: an initialised platform, users in departments, CSRs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import Platform, create_api_token, initialise, open_platform
from ca.ra import RegistrationAuthority
from ca.service import CAService
from core.clock import FrozenClock
from directory.service import DirectoryService
from tests.helpers import make_settings
from tests.integration.auth.conftest import FAST_PASSWORDS, PASSWORD


@dataclasses.dataclass
class RAPlatform:
    platform: Platform
    client: TestClient

    @property
    def directory(self) -> DirectoryService:
        return self.platform.services["directory"]  # type: ignore[no-any-return]

    @property
    def ca(self) -> CAService:
        return self.platform.services["ca"]  # type: ignore[no-any-return]

    @property
    def ra(self) -> RegistrationAuthority:
        return self.platform.services["ra"]  # type: ignore[no-any-return]

    def person(self, login: str, name: str, *roles: str, email: str | None = None) -> None:
        self.directory.create_user("test", login=login, display_name=name, password=PASSWORD,
                                   email=email or f"{login}@czj.gov.example", department="budget")
        for role in roles:
            self.directory.grant_role("test", login, role)

    def bearer(self, login: str) -> dict[str, str]:
        response = self.client.post("/api/v1/auth/login", json={"login": login, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def token(self, name: str, permissions: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_api_token(self.platform, name, permissions)}"}


def make_csr(common_name: str = "Mallory Free Text", email: str | None = None,
             organisation: str | None = "Evil Corp") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _ra_platform(tmp_path: Path, ra: dict[str, Any]) -> Iterator[RAPlatform]:
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    settings = make_settings(tmp_path / "var", "", passwords=FAST_PASSWORDS, ra=ra,
                             ca={"background_jobs": False})
    initialise(settings, clock=clock)
    platform = open_platform(settings, clock=clock)
    app = create_app(settings, platform)
    try:
        with TestClient(app) as client:
            ra_platform = RAPlatform(platform, client)
            directory = ra_platform.directory
            directory.create_department("test", code="county", name="东城县人民政府")
            directory.create_department("test", code="finance", name="财政局", parent="county")
            directory.create_department("test", code="budget", name="预算科", parent="finance")
            yield ra_platform
    finally:
        platform.close()


@pytest.fixture
def ra_platform(tmp_path: Path) -> Iterator[RAPlatform]:
    yield from _ra_platform(tmp_path, {})


@pytest.fixture
def ra_platform_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], RAPlatform]]:
    generators: list[Iterator[RAPlatform]] = []

    def build(ra: dict[str, Any]) -> RAPlatform:
        generator = _ra_platform(tmp_path, ra)
        generators.append(generator)
        return next(generator)

    yield build
    for generator in generators:
        next(generator, None)

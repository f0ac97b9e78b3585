"""Fixtures for the CA: an initialised platform (SQLite or PostgreSQL), and the real HTTP service.

``live_server`` runs ``create_app(settings, platform)`` under uvicorn in a
background thread on 127.0.0.1 at a free port, with the app's lifespan (so
background tasks such as the CRL publisher run), and stops it afterwards.
Other parts can copy it: only ``start_live_server`` knows about uvicorn.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, initialise, open_platform
from ca.models import CertificateRow
from ca.service import CAService
from core.clock import FrozenClock
from core.config import Settings
from core.store.models import AuditRecordRow
from tests.fixtures.postgres import free_port
from tests.helpers import make_settings


@dataclasses.dataclass
class LiveServer:
    """A running Hengxin: its base URL, platform (same process) and an administrator's headers."""

    url: str
    platform: Platform
    settings: Settings
    headers: dict[str, str]

    @property
    def ca(self) -> CAService:
        service = self.platform.services["ca"]
        assert isinstance(service, CAService)
        return service

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)


def start_live_server(settings: Settings, platform: Platform, port: int) -> Callable[[], None]:
    """Serve ``create_app(settings, platform)`` on 127.0.0.1:``port`` in a thread; return a stop function."""
    app = create_app(settings, platform)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)

    return stop


def _live(directory: Path, **sections: dict[str, Any]) -> Iterator[LiveServer]:
    port = free_port()
    settings = make_settings(directory / "var", instance={"base_url": f"http://127.0.0.1:{port}"}, **sections)
    initialise(settings)
    platform = open_platform(settings)
    stop = start_live_server(settings, platform, port)
    try:
        headers = {"Authorization": f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"}
        yield LiveServer(f"http://127.0.0.1:{port}", platform, settings, headers)
    finally:
        stop()
        platform.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh, initialised Hengxin served over real HTTP for one test."""
    yield from _live(tmp_path)


@pytest.fixture(scope="module")
def shared_live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One served Hengxin for all tests of a module (they must not depend on each other's state)."""
    yield from _live(tmp_path_factory.mktemp("live"))


# -- platforms without HTTP ------------------------------------------------------------------------------


@dataclasses.dataclass
class CAPlatform:
    platform: Platform
    clock: FrozenClock

    @property
    def ca(self) -> CAService:
        service = self.platform.services["ca"]
        assert isinstance(service, CAService)
        return service

    def counts(self) -> tuple[int, int]:
        """(rows in ca_certificates, rows in audit_records): to prove that a refused request wrote nothing."""
        return table_counts(self.platform)


def table_counts(platform: Platform) -> tuple[int, int]:
    with platform.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(CertificateRow)) or 0,
            session.scalar(select(func.count()).select_from(AuditRecordRow)) or 0,
        )


def _ca_platform(directory: Path, database_url: str = "", **sections: dict[str, Any]) -> Iterator[CAPlatform]:
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    settings = make_settings(directory / "var", database_url, **sections)
    initialise(settings, clock=clock)
    platform = open_platform(settings, clock=clock)
    try:
        yield CAPlatform(platform, clock)
    finally:
        platform.close()


@pytest.fixture
def ca_platform(tmp_path: Path, database_url: str) -> Iterator[CAPlatform]:
    """An initialised platform with a frozen clock, once on SQLite and once on PostgreSQL."""
    yield from _ca_platform(tmp_path, database_url)


@pytest.fixture
def sqlite_ca_platform(tmp_path: Path) -> Iterator[CAPlatform]:
    """The same on SQLite only, for tests where the database makes no difference."""
    yield from _ca_platform(tmp_path)


# -- requests --------------------------------------------------------------------------------------------


def make_key(key_type: str = "ec-p256") -> Any:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.split("-")[1]))


def make_csr(
    common_name: str,
    *,
    key: Any = None,
    dns: tuple[str, ...] = (),
    email: tuple[str, ...] = (),
    organisation: str | None = None,
) -> tuple[bytes, Any]:
    """A PEM CSR for ``common_name`` (and SANs) and its private key."""
    key = key or make_key()
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [x509.RFC822Name(e) for e in email]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM), key


# What each end-entity profile needs in an API request (subject and SANs), for "every profile" tests.
PROFILE_REQUESTS: dict[str, dict[str, Any]] = {
    "person-auth": {"subject": {"CN": "张伟", "O": "某某县人民政府", "C": "CN"},
                    "sans": {"email": ["zhang.wei@example.gov.cn"]}},
    "person-sign": {"subject": {"CN": "张伟", "O": "某某县人民政府", "serialNumber": "ID-0001"},
                    "sans": {"email": ["zhang.wei@example.gov.cn"]}},
    "organisation-seal": {"subject": {"CN": "某某县人民政府电子印章", "O": "某某县人民政府", "C": "CN"}},
    "server-tls": {"subject": {"CN": "portal.example.gov.cn", "O": "某某县人民政府"},
                   "sans": {"dns": ["portal.example.gov.cn"], "ip": ["192.0.2.10"]}},
    "tsa": {"subject": {"CN": "恒信时间戳服务", "O": "某某县人民政府"}},
    "ocsp-responder": {"subject": {"CN": "外部 OCSP 响应器", "O": "某某县人民政府"}},
    "dr-probe": {"subject": {"CN": "dr-probe-1", "O": "恒信"}, "sans": {"dns": ["probe.dr.example.gov.cn"]}},
}

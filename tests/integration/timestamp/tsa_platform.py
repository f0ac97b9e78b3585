"""A real Hengxin with its TSA, for the timestamp integration and interop tests.

:func:`live_tsa` initialises a platform (the CA component issues the TSA
certificate), serves ``create_app(settings, platform)`` with uvicorn on
127.0.0.1 at a free port in a background thread, with the app's lifespan (so
the NTP poll runs), and stops it afterwards.  The idea is the CA tests'
``live_server``; only :func:`start_live_server` knows about uvicorn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, initialise, open_platform
from core.config import Settings
from core.store.models import AuditRecordRow
from tests.fixtures.postgres import free_port
from tests.helpers import make_settings
from timestamp.models import TimestampTokenRow
from timestamp.service import TimestampService

TIMESTAMP_QUERY = {"Content-Type": "application/timestamp-query"}


@dataclasses.dataclass
class LiveTSA:
    """A running Hengxin: base URL, the platform (same process) and an administrator's headers."""

    url: str
    platform: Platform
    settings: Settings
    headers: dict[str, str]

    @property
    def service(self) -> TimestampService:
        service = self.platform.services["tsa"]
        assert isinstance(service, TimestampService)
        return service

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def post_query(self, der: bytes, **headers: str) -> httpx.Response:
        with self.client() as client:
            return client.post("/tsa", content=der, headers={**TIMESTAMP_QUERY, **headers})

    @property
    def root(self) -> x509.Certificate:
        ca = self.platform.services["ca"]
        return next(c.certificate for c in ca.list_cas() if c.is_root)

    @property
    def intermediates(self) -> list[x509.Certificate]:
        ca = self.platform.services["ca"]
        return [c.certificate for c in ca.list_cas() if not c.is_root]

    @property
    def tsa_certificate(self) -> x509.Certificate:
        credentials = self.service.credentials
        assert credentials is not None
        return credentials.certificate

    def write_pki(self, directory: Path) -> tuple[Path, Path]:
        """root.pem (trust anchor) and chain.pem (intermediates and the TSA certificate), for openssl."""
        directory.mkdir(parents=True, exist_ok=True)
        root = directory / "root.pem"
        chain = directory / "chain.pem"
        root.write_bytes(self.root.public_bytes(Encoding.PEM))
        chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in [*self.intermediates, self.tsa_certificate]))
        return root, chain

    def counts(self) -> tuple[int, int]:
        return counts(self.platform)


def counts(platform: Platform) -> tuple[int, int]:
    """(recorded tokens, ``timestamp.issue`` audit records)."""
    with platform.transaction() as session:
        tokens = session.scalar(select(func.count()).select_from(TimestampTokenRow)) or 0
        audited = (
            session.scalar(
                select(func.count()).select_from(AuditRecordRow).where(AuditRecordRow.action == "timestamp.issue")
            )
            or 0
        )
    return tokens, audited


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


def tsa_platform(directory: Path, database_url: str = "", **sections: dict[str, Any]) -> Platform:
    """An initialised platform (TSA certificate issued) opened on ``directory``; the caller closes it."""
    settings = make_settings(directory / "var", database_url, **sections)
    initialise(settings)
    return open_platform(settings)


def live_tsa(directory: Path, database_url: str = "", **sections: dict[str, Any]) -> Iterator[LiveTSA]:
    """Yield a served, initialised Hengxin; stop and close it afterwards."""
    port = free_port()
    instance = {"base_url": f"http://127.0.0.1:{port}", **sections.pop("instance", {})}
    settings = make_settings(directory / "var", database_url, instance=instance, **sections)
    initialise(settings)
    platform = open_platform(settings)
    stop = start_live_server(settings, platform, port)
    try:
        headers = {"Authorization": f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"}
        yield LiveTSA(f"http://127.0.0.1:{port}", platform, settings, headers)
    finally:
        stop()
        platform.close()


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, step: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


running_tsa = contextlib.contextmanager(live_tsa)

"""An initialised platform in a temporary directory and an in-process client, for the harnesses."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, initialise, open_platform
from tests.helpers import make_settings


def make_client() -> TestClient:
    settings = make_settings(Path(tempfile.mkdtemp(prefix="hengxin-fuzz-")) / "var")
    initialise(settings)
    platform = open_platform(settings)
    client = TestClient(create_app(settings, platform), raise_server_exceptions=True)
    client.__enter__()
    client.headers["Authorization"] = f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"
    return client


def check_clean(response) -> None:  # type: ignore[no-untyped-def]
    """A 5xx or a traceback in the body is a finding: raise so the fuzzer stops and saves the input."""
    if response.status_code >= 500 or b"Traceback" in response.content:
        raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, initialise, open_platform
from tests.helpers import make_settings


@pytest.fixture
def api_platform(tmp_path: Path) -> Iterator[Platform]:
    settings = make_settings(tmp_path / "var")
    initialise(settings)
    platform = open_platform(settings)
    yield platform
    platform.close()


@pytest.fixture
def client(api_platform: Platform) -> Iterator[TestClient]:
    app = create_app(api_platform.settings, api_platform)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def admin_headers(api_platform: Platform) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_platform.secrets.get(ADMIN_TOKEN_SECRET)}"}

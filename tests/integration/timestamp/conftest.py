"""Fixtures for the timestamp integration tests (chronyd comes from tests/fixtures/chrony.py)."""

from __future__ import annotations

import pytest

from tests.unit.timestamp.tsa_pki import TSAPKI, build_tsa_pki


@pytest.fixture(scope="session")
def tsa_pki() -> TSAPKI:
    return build_tsa_pki("ec-p256")

"""Fixtures for the timestamp unit tests: the test PKI and a TSA over it."""

from __future__ import annotations

import pytest

from tests.unit.timestamp.tsa_pki import TSAPKI, build_tsa_pki
from timestamp.tsa import TSAService


@pytest.fixture(scope="session")
def tsa_pki() -> TSAPKI:
    """Root CA -> TSA CA -> TSA certificate with an EC P-256 key."""
    return build_tsa_pki("ec-p256")


@pytest.fixture
def tsa(tsa_pki: TSAPKI) -> TSAService:
    """A TSA with the test policy, the system clock and no clock discipline."""
    return tsa_pki.service()

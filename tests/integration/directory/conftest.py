"""Fixtures for the directory integration tests: adapters bound to the test slapd servers."""

from __future__ import annotations

from collections.abc import Iterator

import argon2
import pytest

from directory.ldap import LDAPDirectory
from tests.fixtures.slapd import BASE_DN, SYNC_PASSWORD, HengxinSlapd
from tests.integration.directory.tools import MiniPKI

# Low-cost argon2id parameters keep the tests fast; slapd verifies whatever the hash says.
HASHER = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


@pytest.fixture
def directory(slapd: HengxinSlapd) -> Iterator[LDAPDirectory]:
    """The adapter bound as the rootdn of ``slapd``, with the base containers created."""
    adapter = LDAPDirectory(slapd.ldap_uri, BASE_DN, bind_dn=slapd.root_dn, password=slapd.root_pw, network_timeout=2.0)
    adapter.ensure_base()
    yield adapter
    adapter.close()


@pytest.fixture
def sync_directory(hardened_slapd: HengxinSlapd) -> Iterator[LDAPDirectory]:
    """The adapter bound as Hengxin's sync identity on the slapd with the shipped configuration."""
    adapter = LDAPDirectory(
        hardened_slapd.ldap_uri,
        BASE_DN,
        bind_dn=hardened_slapd.sync_dn,
        password=SYNC_PASSWORD,
        network_timeout=2.0,
    )
    adapter.ensure_base()
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def test_pki() -> MiniPKI:
    return MiniPKI.create()


def password_hash(password: str) -> str:
    """An argon2id hash, as the directory service would publish it."""
    return HASHER.hash(password)

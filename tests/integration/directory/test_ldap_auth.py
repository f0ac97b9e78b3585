"""Binding with published argon2id hashes (real ldapwhoami) and the adapter's error mapping."""

from __future__ import annotations

import socket
import time

import pytest

from directory.errors import LDAPInvalidCredentials, LDAPNotFound, LDAPUnavailable
from directory.ldap import LDAPDirectory
from directory.ldap_mapping import PublishedUser
from tests.fixtures.slapd import BASE_DN, HengxinSlapd
from tests.integration.directory.conftest import password_hash
from tests.integration.directory.tools import ldapwhoami

USER_DN = f"uid=lina,ou=people,{BASE_DN}"


def lina(password: str | None = "Plum-Blossom-7", **changes: object) -> PublishedUser:
    values: dict[str, object] = {
        "login": "lina",
        "display_name": "李娜",
        "password_hash": password_hash(password) if password else None,
    }
    values.update(changes)
    return PublishedUser(**values)  # type: ignore[arg-type]


def test_ldapwhoami_binds_with_the_password_whose_argon2id_hash_was_published(
    slapd: HengxinSlapd, directory: LDAPDirectory
) -> None:
    directory.upsert_user(lina())

    ok = ldapwhoami(slapd.ldap_uri, USER_DN, "Plum-Blossom-7")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"dn:{USER_DN}"

    wrong = ldapwhoami(slapd.ldap_uri, USER_DN, "plum-blossom-7")
    assert wrong.returncode == 49 and "Invalid credentials" in wrong.stderr


def test_ldapwhoami_fails_once_the_user_is_locked_and_works_again_when_unlocked(
    slapd: HengxinSlapd, directory: LDAPDirectory
) -> None:
    user = lina()
    directory.upsert_user(user)
    directory.upsert_user(PublishedUser(**{**user.__dict__, "locked": True}))

    entry = directory.search_user("lina")
    assert entry is not None and entry.values("userPassword") == ()
    assert ldapwhoami(slapd.ldap_uri, USER_DN, "Plum-Blossom-7").returncode == 49

    directory.upsert_user(user)
    assert ldapwhoami(slapd.ldap_uri, USER_DN, "Plum-Blossom-7").returncode == 0


def test_ldapwhoami_refuses_the_old_password_after_it_changes(slapd: HengxinSlapd, directory: LDAPDirectory) -> None:
    directory.upsert_user(lina("Old-Password-1"))
    directory.upsert_user(lina("New-Password-2"))
    assert ldapwhoami(slapd.ldap_uri, USER_DN, "Old-Password-1").returncode == 49
    assert ldapwhoami(slapd.ldap_uri, USER_DN, "New-Password-2").returncode == 0


def test_authenticate_binds_on_a_separate_connection(directory: LDAPDirectory) -> None:
    directory.upsert_user(lina())
    assert directory.authenticate("lina", "Plum-Blossom-7") == USER_DN
    assert directory.authenticate_dn(USER_DN, "Plum-Blossom-7") == USER_DN
    # The adapter's own connection is still bound as before and usable.
    assert directory.search_user("lina") is not None


@pytest.mark.parametrize(
    ("login", "password"),
    [("lina", "wrong"), ("lina", ""), ("nobody", "Plum-Blossom-7"), ("*", "Plum-Blossom-7")],
    ids=["wrong-password", "empty-password", "unknown-login", "wildcard-login"],
)
def test_authenticate_refuses_bad_credentials_alike(directory: LDAPDirectory, login: str, password: str) -> None:
    directory.upsert_user(lina())
    with pytest.raises(LDAPInvalidCredentials) as caught:
        directory.authenticate(login, password)
    assert caught.value.code == "directory.ldap_invalid_credentials"
    assert caught.value.detail == "invalid LDAP credentials"


def test_authenticate_refuses_a_user_without_password(directory: LDAPDirectory) -> None:
    directory.upsert_user(lina(password=None))
    with pytest.raises(LDAPInvalidCredentials):
        directory.authenticate("lina", "anything")


def test_bad_service_bind_raises_invalid_credentials_without_the_password(slapd: HengxinSlapd) -> None:
    adapter = LDAPDirectory(slapd.ldap_uri, BASE_DN, bind_dn=slapd.root_dn, password="not-the-root-password")
    with pytest.raises(LDAPInvalidCredentials) as caught:
        adapter.check()
    assert "not-the-root-password" not in str(caught.value)
    assert caught.value.__cause__ is not None  # raised from the python-ldap error


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refusing_url_raises_ldap_unavailable_quickly() -> None:
    adapter = LDAPDirectory(
        f"ldap://127.0.0.1:{_free_port()}", BASE_DN, bind_dn="cn=x", password="secret-value", network_timeout=1.0
    )
    started = time.monotonic()
    with pytest.raises(LDAPUnavailable) as caught:
        adapter.check()
    assert time.monotonic() - started < 3
    assert caught.value.code == "directory.ldap_unavailable"
    assert caught.value.category.value == "unavailable"
    assert "secret-value" not in str(caught.value)


def test_adapter_reconnects_after_slapd_restarts(restartable_slapd: HengxinSlapd) -> None:
    adapter = LDAPDirectory(
        restartable_slapd.ldap_uri,
        BASE_DN,
        bind_dn=restartable_slapd.root_dn,
        password=restartable_slapd.root_pw,
        network_timeout=1.0,
    )
    adapter.ensure_base()
    adapter.upsert_user(lina())

    restartable_slapd.pause()
    with pytest.raises(LDAPUnavailable):
        adapter.upsert_user(lina(display_name="李娜娜"))
    restartable_slapd.resume()

    adapter.upsert_user(lina(display_name="李娜娜"))
    entry = adapter.search_user("lina")
    assert entry is not None and entry.text("displayName") == "李娜娜"


def test_check_reports_a_missing_base_entry(slapd: HengxinSlapd) -> None:
    adapter = LDAPDirectory(
        slapd.ldap_uri, "dc=missing,dc=gov,dc=example", bind_dn=slapd.root_dn, password=slapd.root_pw
    )
    with pytest.raises(LDAPNotFound):
        adapter.check()

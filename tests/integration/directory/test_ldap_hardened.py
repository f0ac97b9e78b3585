"""The shipped slapd configuration (directory/slapd/) applied to a real slapd: ACLs and ppolicy."""

from __future__ import annotations

import pytest

from directory.errors import LDAPInsufficientAccess, LDAPInvalidCredentials
from directory.ldap import LDAPDirectory, WriteOutcome
from directory.ldap_mapping import PublishedUser
from tests.fixtures.slapd import BASE_DN, SYNC_PASSWORD, HengxinSlapd
from tests.integration.directory.conftest import password_hash
from tests.integration.directory.tools import ldapsearch, ldapwhoami

ZHANG_DN = f"uid=zhangwei,ou=people,{BASE_DN}"
LINA_DN = f"uid=lina,ou=people,{BASE_DN}"
MAX_FAILURES = 5  # the shipped default policy


def user(login: str, name: str, password: str) -> PublishedUser:
    return PublishedUser(login=login, display_name=name, password_hash=password_hash(password))


@pytest.fixture
def two_users(sync_directory: LDAPDirectory) -> LDAPDirectory:
    sync_directory.upsert_user(user("zhangwei", "张伟", "Zhang-Pass-1"))
    sync_directory.upsert_user(user("lina", "李娜", "Lina-Pass-2"))
    return sync_directory


def test_another_user_cannot_read_a_users_password_but_reads_other_attributes(
    hardened_slapd: HengxinSlapd, two_users: LDAPDirectory
) -> None:
    ((_, attributes),) = ldapsearch(hardened_slapd.ldap_uri, ZHANG_DN, "*", bind=(LINA_DN, "Lina-Pass-2"), scope="base")
    assert "userpassword" not in attributes
    assert attributes["displayname"] == ["张伟".encode()]

    # Not even the owner reads its own hash.
    ((_, own),) = ldapsearch(hardened_slapd.ldap_uri, ZHANG_DN, "*", bind=(ZHANG_DN, "Zhang-Pass-1"), scope="base")
    assert "userpassword" not in own


def test_anonymous_clients_see_nothing(hardened_slapd: HengxinSlapd, two_users: LDAPDirectory) -> None:
    assert ldapsearch(hardened_slapd.ldap_uri, BASE_DN) == []


def test_the_sync_identity_reads_and_writes_userpassword(
    hardened_slapd: HengxinSlapd, two_users: LDAPDirectory
) -> None:
    ((_, attributes),) = ldapsearch(
        hardened_slapd.ldap_uri,
        ZHANG_DN,
        "userPassword",
        bind=(hardened_slapd.sync_dn, SYNC_PASSWORD),
        scope="base",
    )
    assert attributes["userpassword"][0].startswith(b"{ARGON2}$argon2id$")

    assert two_users.upsert_user(user("zhangwei", "张伟", "Zhang-Pass-3")) is WriteOutcome.MODIFIED
    assert ldapwhoami(hardened_slapd.ldap_uri, ZHANG_DN, "Zhang-Pass-3").returncode == 0
    assert ldapwhoami(hardened_slapd.ldap_uri, ZHANG_DN, "Zhang-Pass-1").returncode == 49


def test_an_ordinary_user_cannot_write_passwords_or_entries(
    hardened_slapd: HengxinSlapd, two_users: LDAPDirectory
) -> None:
    as_lina = LDAPDirectory(hardened_slapd.ldap_uri, BASE_DN, bind_dn=LINA_DN, password="Lina-Pass-2")
    with pytest.raises(LDAPInsufficientAccess) as caught:
        as_lina.upsert_user(user("zhangwei", "张伟", "Taken-Over-9"))
    assert caught.value.code == "directory.ldap_insufficient_access"
    with pytest.raises(LDAPInsufficientAccess):
        as_lina.upsert_user(user("lina", "李娜", "My-Own-Choice-9"))
    assert ldapwhoami(hardened_slapd.ldap_uri, ZHANG_DN, "Zhang-Pass-1").returncode == 0


def test_wrong_binds_lock_the_account_for_ldap_until_the_lockout_is_cleared(
    hardened_slapd: HengxinSlapd, two_users: LDAPDirectory
) -> None:
    for _ in range(MAX_FAILURES):
        assert ldapwhoami(hardened_slapd.ldap_uri, ZHANG_DN, "guess").returncode == 49

    locked = ldapwhoami(hardened_slapd.ldap_uri, ZHANG_DN, "Zhang-Pass-1")
    assert locked.returncode == 49  # the right password fails, and looks like a wrong one
    with pytest.raises(LDAPInvalidCredentials):
        two_users.authenticate("zhangwei", "Zhang-Pass-1")
    # Other users are not affected.
    assert ldapwhoami(hardened_slapd.ldap_uri, LINA_DN, "Lina-Pass-2").returncode == 0
    # Whether an account is locked is not visible to other users.
    ((_, seen),) = ldapsearch(hardened_slapd.ldap_uri, ZHANG_DN, "+", bind=(LINA_DN, "Lina-Pass-2"), scope="base")
    assert "pwdaccountlockedtime" not in seen and "pwdfailuretime" not in seen

    assert two_users.clear_lockout("zhangwei") is True
    assert ldapwhoami(hardened_slapd.ldap_uri, ZHANG_DN, "Zhang-Pass-1").returncode == 0
    assert two_users.clear_lockout("zhangwei") is False


def test_the_sync_identity_is_not_locked_out_by_wrong_binds(hardened_slapd: HengxinSlapd) -> None:
    for _ in range(MAX_FAILURES + 1):
        assert ldapwhoami(hardened_slapd.ldap_uri, hardened_slapd.sync_dn, "guess").returncode == 49
    assert ldapwhoami(hardened_slapd.ldap_uri, hardened_slapd.sync_dn, SYNC_PASSWORD).returncode == 0

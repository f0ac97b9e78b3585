"""Federation: reading users from a second, independent slapd and authenticating against it."""

from __future__ import annotations

import base64

import pytest

from directory.errors import LDAPConfigurationError, LDAPInvalidCredentials
from directory.ldap import LDAPDirectory, import_users
from directory.ldap_mapping import AttributeMap
from tests.fixtures.slapd import FEDERATION_BASE_DN, HengxinSlapd
from tests.integration.directory.conftest import password_hash
from tests.integration.directory.tools import MiniPKI, der


@pytest.fixture
def partner(federation_slapd: HengxinSlapd, test_pki: MiniPKI) -> HengxinSlapd:
    certificate, _ = test_pki.issue("Alice")
    federation_slapd.ldapadd(
        f"""dn: ou=staff,{FEDERATION_BASE_DN}
objectClass: organizationalUnit
ou: staff

dn: uid=alice,ou=staff,{FEDERATION_BASE_DN}
objectClass: inetOrgPerson
uid: alice
cn: Alice Chen
sn: Chen
givenName: Alice
displayName:: {base64.b64encode("陈爱丽".encode()).decode()}
mail: alice@partner.example
employeeNumber: P-001
ou: Finance
userCertificate;binary:: {base64.b64encode(der(certificate)).decode()}
userPassword: {{ARGON2}}{password_hash("Alice-Pass-1")}

dn: uid=bob,ou=staff,{FEDERATION_BASE_DN}
objectClass: inetOrgPerson
uid: bob
cn: Bob Liu
sn: Liu
employeeNumber: P-002
userPassword: {{ARGON2}}{password_hash("Bob-Pass-2")}

dn: cn=printer,ou=staff,{FEDERATION_BASE_DN}
objectClass: device
cn: printer
"""
    )
    federation_slapd.alice_certificate = der(certificate)
    return federation_slapd


def test_import_users_reads_users_from_another_directory(partner: HengxinSlapd) -> None:
    users = import_users(partner.ldap_uri, FEDERATION_BASE_DN, bind_dn=partner.root_dn, password=partner.root_pw)
    assert [u.login for u in users] == ["alice", "bob"]
    alice, bob = users
    assert alice.dn == f"uid=alice,ou=staff,{FEDERATION_BASE_DN}"
    assert alice.display_name == "陈爱丽"
    assert (alice.given_name, alice.surname, alice.email, alice.department) == (
        "Alice",
        "Chen",
        "alice@partner.example",
        "Finance",
    )
    assert alice.certificates == (partner.alice_certificate,)
    assert bob.display_name == "Bob Liu"  # falls back to cn
    assert bob.email is None and bob.certificates == ()


def test_import_users_with_an_attribute_map_and_filter(partner: HengxinSlapd) -> None:
    users = import_users(
        partner.ldap_uri,
        FEDERATION_BASE_DN,
        search_filter="(&(objectClass=inetOrgPerson)(sn=Liu))",
        attribute_map=AttributeMap(login="employeeNumber"),
    )
    assert [(u.login, u.display_name) for u in users] == [("P-002", "Bob Liu")]


def test_import_users_rejects_a_malformed_filter(partner: HengxinSlapd) -> None:
    with pytest.raises(LDAPConfigurationError):
        import_users(partner.ldap_uri, FEDERATION_BASE_DN, search_filter="(uid=alice")


def test_federated_user_authenticates_by_bind_against_its_home_directory(partner: HengxinSlapd) -> None:
    home = LDAPDirectory(
        partner.ldap_uri, FEDERATION_BASE_DN, user_filter="(&(objectClass=inetOrgPerson)(uid={login}))"
    )
    assert home.authenticate("alice", "Alice-Pass-1") == f"uid=alice,ou=staff,{FEDERATION_BASE_DN}"
    with pytest.raises(LDAPInvalidCredentials):
        home.authenticate("alice", "Bob-Pass-2")
    home.close()

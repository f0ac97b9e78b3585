"""Full reconcile against a real slapd: drift made behind the adapter's back is reported and repaired."""

from __future__ import annotations

from directory.ldap import LDAPDirectory
from directory.ldap_mapping import (
    DirectoryLayout,
    PublishedCA,
    PublishedDepartment,
    PublishedGroup,
    PublishedUser,
    diff,
)
from tests.fixtures.slapd import BASE_DN, HengxinSlapd, SlapdFactory
from tests.integration.directory.conftest import password_hash
from tests.integration.directory.tools import MiniPKI, der, ldapwhoami

LAYOUT = DirectoryLayout(BASE_DN)


def expected_tree(pki: MiniPKI) -> tuple:
    return LAYOUT.expected_entries(
        departments=[
            PublishedDepartment(id="1", name="省政府"),
            PublishedDepartment(id="2", name="信息中心", parent_path=("省政府",)),
        ],
        users=[
            PublishedUser(
                login="zhangwei",
                display_name="张伟",
                department_path=("省政府", "信息中心"),
                password_hash=password_hash("Zhang-Pass-1"),
            ),
            PublishedUser(login="wang", display_name="王芳", email="wang@gov.example"),
        ],
        groups=[PublishedGroup(name="运维", members=("zhangwei", "wang")), PublishedGroup(name="空组")],
        cas=[PublishedCA(name="Root", certificate=der(pki.certificate), crl=der(pki.crl()))],
    )


def test_reconcile_reports_drift_made_behind_the_adapters_back_and_repairs_it(
    slapd: HengxinSlapd, directory: LDAPDirectory, test_pki: MiniPKI
) -> None:
    expected = expected_tree(test_pki)
    first = directory.reconcile(expected)
    assert {e.dn for e in first.missing} == {e.dn for e in expected} - set(LAYOUT.container_dns)
    assert directory.reconcile(expected, apply=False).is_empty

    slapd.ldapmodify(
        f"""dn: uid=zhangwei,ou=people,{BASE_DN}
changetype: modify
replace: displayName
displayName: Zhang Wei
-
add: description
description: edited by hand
-
delete: userPassword

dn: cn=运维,ou=groups,{BASE_DN}
changetype: delete

dn: uid=intruder,ou=people,{BASE_DN}
changetype: add
objectClass: inetOrgPerson
uid: intruder
cn: intruder
sn: intruder
userPassword: plain-text

dn: uid=wang,ou=people,{BASE_DN}
changetype: delete

dn: uid=wang,ou=people,{BASE_DN}
changetype: add
objectClass: account
uid: wang
"""
    )

    drift = directory.reconcile(expected, apply=False)
    assert [e.dn for e in drift.missing] == [f"cn=运维,ou=groups,{BASE_DN}"]
    assert [e.dn for e in drift.extra] == [f"uid=intruder,ou=people,{BASE_DN}"]
    changed = {c.dn: {a.name for a in c.attributes} for c in drift.changed}
    assert changed[f"uid=zhangwei,ou=people,{BASE_DN}"] == {"displayName", "description", "userPassword"}
    assert "objectClass" in changed[f"uid=wang,ou=people,{BASE_DN}"]
    assert "plain-text" not in repr(drift) and "argon2" not in repr(drift)  # hashes are redacted
    assert "missing cn=运维" in drift.summary()

    repaired = directory.reconcile(expected)
    assert repaired == drift
    assert directory.reconcile(expected, apply=False).is_empty
    assert ldapwhoami(slapd.ldap_uri, f"uid=zhangwei,ou=people,{BASE_DN}", "Zhang-Pass-1").returncode == 0
    assert ldapwhoami(slapd.ldap_uri, f"uid=intruder,ou=people,{BASE_DN}", "plain-text").returncode == 49


def test_reconcile_leaves_entries_outside_the_managed_subtrees_alone(
    slapd: HengxinSlapd, directory: LDAPDirectory, test_pki: MiniPKI
) -> None:
    slapd.ldapadd(f"dn: ou=applications,{BASE_DN}\nobjectClass: organizationalUnit\nou: applications\n")
    drift = directory.reconcile(expected_tree(test_pki))
    assert all("applications" not in e.dn for e in drift.extra)
    assert directory.read_entry(f"ou=applications,{BASE_DN}") is not None


def test_exported_ldif_loads_into_an_empty_slapd_with_ldapadd(
    slapd_factory: SlapdFactory, directory: LDAPDirectory, test_pki: MiniPKI
) -> None:
    expected = expected_tree(test_pki)
    directory.reconcile(expected)
    exported = directory.export_ldif()
    assert exported.startswith("# Hengxin LDIF export")

    restored = slapd_factory(add_suffix=False)
    restored.ldapadd(exported)
    copy = LDAPDirectory(restored.ldap_uri, BASE_DN, bind_dn=restored.root_dn, password=restored.root_pw)
    assert diff(expected, copy.read_all()).is_empty
    assert copy.read_entry(BASE_DN) is not None
    assert ldapwhoami(restored.ldap_uri, f"uid=zhangwei,ou=people,{BASE_DN}", "Zhang-Pass-1").returncode == 0
    copy.close()


def test_ensure_base_creates_suffix_and_containers_once(slapd_factory: SlapdFactory) -> None:
    server = slapd_factory(add_suffix=False)
    adapter = LDAPDirectory(server.ldap_uri, BASE_DN, bind_dn=server.root_dn, password=server.root_pw)
    assert adapter.ensure_base() == (BASE_DN, *LAYOUT.container_dns)
    assert adapter.ensure_base() == ()
    adapter.check()
    adapter.close()

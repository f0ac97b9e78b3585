"""Publishing through LDAPDirectory, read back with the real ldapsearch and openssl."""

from __future__ import annotations

import subprocess

from directory.ldap import LDAPDirectory, WriteOutcome
from directory.ldap_mapping import PublishedCA, PublishedDepartment, PublishedGroup, PublishedUser
from tests.fixtures.slapd import BASE_DN, HengxinSlapd
from tests.integration.directory.conftest import password_hash
from tests.integration.directory.tools import MiniPKI, der, ldapsearch

ROOT = PublishedDepartment(id="d1", name="省政府")
CENTRE = PublishedDepartment(id="d2", name="信息中心", parent_path=("省政府",))


def zhang(**changes: object) -> PublishedUser:
    values: dict[str, object] = {
        "login": "zhangwei",
        "display_name": "张伟",
        "given_name": "伟",
        "surname": "张",
        "email": "zhangwei@例子.中国",
        "phone": "+86 10 6512 3456",
        "department_path": ("省政府", "信息中心"),
        "password_hash": password_hash("Correct-Horse-1"),
    }
    values.update(changes)
    return PublishedUser(**values)  # type: ignore[arg-type]


def test_user_published_through_the_adapter_is_seen_by_ldapsearch_with_chinese_name_and_department(
    slapd: HengxinSlapd, directory: LDAPDirectory, test_pki: MiniPKI
) -> None:
    certificate, _ = test_pki.issue("张伟")
    directory.upsert_department(ROOT)
    directory.upsert_department(CENTRE)
    assert directory.upsert_user(zhang(certificates=[der(certificate)])) is WriteOutcome.ADDED

    # Anonymous, as an application would on this slapd without ACLs: ldapsearch -x -H <uri> -b <base>.
    records = ldapsearch(slapd.ldap_uri, BASE_DN, search_filter="(uid=zhangwei)")
    assert len(records) == 1
    dn, attributes = records[0]
    assert dn == f"uid=zhangwei,ou=people,{BASE_DN}"
    assert attributes["displayname"] == ["张伟".encode()]
    assert attributes["cn"] == ["张伟".encode()]
    assert attributes["sn"] == ["张".encode()]
    assert attributes["givenname"] == ["伟".encode()]
    assert attributes["mail"] == [b"zhangwei@xn--fsqu00a.xn--fiqs8s"]
    assert attributes["telephonenumber"] == [b"+86 10 6512 3456"]
    assert attributes["ou"] == ["信息中心".encode()]
    assert attributes["departmentnumber"] == ["省政府/信息中心".encode()]
    assert attributes["usercertificate;binary"] == [der(certificate)]
    assert attributes["userpassword"][0].startswith(b"{ARGON2}$argon2id$")
    assert {v.lower() for v in attributes["objectclass"]} >= {b"inetorgperson", b"person"}

    departments = ldapsearch(slapd.ldap_uri, f"ou=departments,{BASE_DN}", "ou", bind=(slapd.root_dn, slapd.root_pw))
    assert [dn for dn, _ in departments] == [
        f"ou=departments,{BASE_DN}",
        f"ou=省政府,ou=departments,{BASE_DN}",
        f"ou=信息中心,ou=省政府,ou=departments,{BASE_DN}",
    ]


def test_upsert_is_idempotent_and_updates_changed_attributes(directory: LDAPDirectory) -> None:
    directory.upsert_department(ROOT)
    directory.upsert_department(CENTRE)
    user = zhang()
    assert directory.upsert_user(user) is WriteOutcome.ADDED
    assert directory.upsert_user(user) is WriteOutcome.UNCHANGED
    assert directory.upsert_user(zhang(phone=None, display_name="张伟明")) is WriteOutcome.MODIFIED
    entry = directory.search_user("zhangwei")
    assert entry is not None
    assert entry.text("displayName") == "张伟明"
    assert entry.values("telephoneNumber") == ()


def test_email_with_non_ascii_local_part_is_not_published(directory: LDAPDirectory) -> None:
    directory.upsert_user(zhang(email="张伟@例子.中国", department_path=()))
    entry = directory.search_user("zhangwei")
    assert entry is not None and entry.values("mail") == ()


def test_crl_published_on_the_ca_entry_parses_with_openssl(
    slapd: HengxinSlapd, directory: LDAPDirectory, test_pki: MiniPKI, tmp_path
) -> None:
    crl = test_pki.crl(revoked_serials=(4242,))
    directory.upsert_ca(PublishedCA(name="Hengxin Root CA", certificate=der(test_pki.certificate), crl=der(crl)))

    records = ldapsearch(
        slapd.ldap_uri,
        f"cn=Hengxin Root CA,ou=cas,{BASE_DN}",
        "certificateRevocationList;binary",
        "cACertificate;binary",
        bind=(slapd.root_dn, slapd.root_pw),
        scope="base",
    )
    ((_, attributes),) = records
    crl_file = tmp_path / "ca.crl"
    crl_file.write_bytes(attributes["certificaterevocationlist;binary"][0])
    parsed = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(crl_file), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Hengxin Test Root" in parsed.stdout
    assert "Serial Number: 1092" in parsed.stdout  # 4242
    assert attributes["cacertificate;binary"] == [der(test_pki.certificate)]

    # Without a CRL the attribute disappears.
    directory.upsert_ca(PublishedCA(name="Hengxin Root CA", certificate=der(test_pki.certificate)))
    entry = directory.read_entry(f"cn=Hengxin Root CA,ou=cas,{BASE_DN}")
    assert entry is not None and entry.values("certificateRevocationList") == ()


def test_group_without_members_lists_itself_then_members_update_and_delete_works(
    slapd: HengxinSlapd, directory: LDAPDirectory
) -> None:
    group_dn = f"cn=审计组,ou=groups,{BASE_DN}"
    directory.upsert_user(zhang(department_path=()))
    directory.upsert_user(zhang(login="lina", display_name="李娜", department_path=()))

    directory.upsert_group(PublishedGroup(name="审计组"))
    ((_, attributes),) = ldapsearch(
        slapd.ldap_uri, group_dn, "member", bind=(slapd.root_dn, slapd.root_pw), scope="base"
    )
    assert attributes["member"] == [group_dn.encode()]

    directory.upsert_group(PublishedGroup(name="审计组", members=("zhangwei", "lina")))
    ((_, attributes),) = ldapsearch(
        slapd.ldap_uri, group_dn, "member", bind=(slapd.root_dn, slapd.root_pw), scope="base"
    )
    assert sorted(attributes["member"]) == sorted(
        [f"uid=lina,ou=people,{BASE_DN}".encode(), f"uid=zhangwei,ou=people,{BASE_DN}".encode()]
    )

    # Deleting a user removes it from its groups; the last one leaves the group naming itself.
    directory.delete_user("lina")
    directory.delete_user("zhangwei")
    ((_, attributes),) = ldapsearch(
        slapd.ldap_uri, group_dn, "member", bind=(slapd.root_dn, slapd.root_pw), scope="base"
    )
    assert attributes["member"] == [group_dn.encode()]

    assert directory.delete_group("审计组") is WriteOutcome.DELETED
    assert directory.delete_group("审计组") is WriteOutcome.ABSENT
    assert ldapsearch(slapd.ldap_uri, group_dn, bind=(slapd.root_dn, slapd.root_pw), scope="base") == []


def test_renaming_a_user_keeps_group_membership(directory: LDAPDirectory) -> None:
    directory.upsert_user(zhang(department_path=()))
    directory.upsert_group(PublishedGroup(name="admins", members=("zhangwei",)))
    directory.rename_user("zhangwei", "zhang.wei")
    assert directory.search_user("zhangwei") is None
    renamed = directory.search_user("zhang.wei")
    assert renamed is not None and renamed.texts("uid") == ("zhang.wei",)
    group = directory.read_entry(f"cn=admins,ou=groups,{BASE_DN}")
    assert group is not None
    assert group.texts("member") == (f"uid=zhang.wei,ou=people,{BASE_DN}",)


def test_moving_a_department_moves_its_subtree_and_rewrites_users(directory: LDAPDirectory) -> None:
    directory.upsert_department(ROOT)
    directory.upsert_department(CENTRE)
    directory.upsert_department(PublishedDepartment(id="d3", name="运维科", parent_path=("省政府", "信息中心")))
    directory.upsert_department(PublishedDepartment(id="d4", name="大数据局"))
    directory.upsert_user(zhang())
    directory.upsert_user(zhang(login="wang", display_name="王芳", department_path=("省政府", "信息中心", "运维科")))

    directory.move_department(("省政府", "信息中心"), ("大数据局", "数据中心"))

    assert directory.read_entry(f"ou=运维科,ou=数据中心,ou=大数据局,ou=departments,{BASE_DN}") is not None
    assert directory.read_entry(f"ou=信息中心,ou=省政府,ou=departments,{BASE_DN}") is None
    zhang_entry, wang_entry = directory.search_user("zhangwei"), directory.search_user("wang")
    assert zhang_entry is not None and wang_entry is not None
    assert zhang_entry.text("departmentNumber") == "大数据局/数据中心"
    assert zhang_entry.text("ou") == "数据中心"
    assert wang_entry.text("departmentNumber") == "大数据局/数据中心/运维科"
    assert wang_entry.text("ou") == "运维科"

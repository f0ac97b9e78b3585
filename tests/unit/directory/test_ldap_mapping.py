"""The pure LDAP mapping: DNs, entries, publishing rules and drift."""

from __future__ import annotations

import logging

import pytest

from directory.errors import InvalidPublishedValue
from directory.ldap_mapping import (
    AttributeMap,
    DirectoryLayout,
    Entry,
    PublishedCA,
    PublishedDepartment,
    PublishedGroup,
    PublishedUser,
    diff,
    dn_is_within,
    encode_department_path,
    escape_dn_value,
    imported_user_from_entry,
    normalize_dn,
    parse_dn,
    publishable_mail,
    publishable_phone,
)

BASE = "dc=gov,dc=example"
LAYOUT = DirectoryLayout(BASE)
HASH = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$2tGSpJ7V2PdXJOeXr4O3p8pTnqQ0y7y1fQYbUv+6E1s"
CERT = b"\x30\x82\x01\x00" + b"\x00" * 10


# DNs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("a,b", "a\\,b"),
        ("#hash", "\\#hash"),
        (" lead", "\\ lead"),
        ("trail ", "trail\\ "),
        ('q"+<>;=\\', 'q\\"\\+\\<\\>\\;\\=\\\\'),
        ("信息中心", "信息中心"),
    ],
)
def test_escape_dn_value_escapes_rfc4514_specials(value: str, escaped: str) -> None:
    assert escape_dn_value(value) == escaped
    assert parse_dn(f"cn={escaped},dc=x") == ((("cn", value),), (("dc", "x"),))


def test_parse_dn_reads_hex_escapes_multivalued_rdns_and_spaces() -> None:
    assert parse_dn("uid=\\e5\\bc\\a0 ,  ou=people+l=x ,dc=gov") == (
        (("uid", "张"),),
        (("ou", "people"), ("l", "x")),
        (("dc", "gov"),),
    )
    assert parse_dn("") == ()


@pytest.mark.parametrize("bad", ["cn", "cn=a,", "=a", "cn=a,b", "cn=\\"])
def test_parse_dn_rejects_malformed_dns(bad: str) -> None:
    with pytest.raises(InvalidPublishedValue):
        parse_dn(bad)


def test_normalize_dn_ignores_case_spacing_and_escaping_style() -> None:
    assert normalize_dn("UID=Zhang,OU=People, DC=Gov,DC=Example") == normalize_dn(
        "uid=zhang,ou=people,dc=gov,dc=example"
    )
    assert normalize_dn("ou=\\e4\\bf\\a1\\e6\\81\\af,dc=x") == normalize_dn("ou=信息,dc=x")
    assert dn_is_within("uid=a,ou=people,DC=gov,dc=example", BASE)
    assert not dn_is_within("dc=example", BASE)


# Layout ---------------------------------------------------------------------------


def test_layout_places_each_kind_under_its_container() -> None:
    assert LAYOUT.user_dn("zhangwei") == f"uid=zhangwei,ou=people,{BASE}"
    assert LAYOUT.department_dn(("省政府", "信息中心")) == f"ou=信息中心,ou=省政府,ou=departments,{BASE}"
    assert LAYOUT.group_dn("a,b") == f"cn=a\\,b,ou=groups,{BASE}"
    assert LAYOUT.ca_dn("Root") == f"cn=Root,ou=cas,{BASE}"
    assert [e.dn for e in LAYOUT.container_entries()] == list(LAYOUT.container_dns)


def test_layout_refuses_an_empty_base_dn() -> None:
    with pytest.raises(InvalidPublishedValue):
        DirectoryLayout("")


def test_user_entry_carries_names_department_password_and_certificates() -> None:
    entry = LAYOUT.user_entry(
        PublishedUser(
            login="zhangwei",
            display_name="张伟",
            given_name="伟",
            surname="张",
            email="zw@gov.example",
            phone="+86 10 1234 5678",
            department_path=("省政府", "信息中心"),
            password_hash=HASH,
            certificates=[CERT],
        )
    )
    assert entry.dn == f"uid=zhangwei,ou=people,{BASE}"
    assert entry.texts("objectClass") == ("top", "person", "organizationalPerson", "inetOrgPerson")
    assert (entry.text("cn"), entry.text("sn"), entry.text("givenName"), entry.text("displayName")) == (
        "张伟",
        "张",
        "伟",
        "张伟",
    )
    assert entry.text("ou") == "信息中心"
    assert entry.text("departmentNumber") == "省政府/信息中心"
    assert entry.values("userPassword") == (b"{ARGON2}" + HASH.encode(),)
    assert entry.values("userCertificate") == (CERT,)  # ;binary is ignored by lookups
    assert "redacted" in repr(entry) and HASH not in repr(entry)


def test_user_without_surname_uses_display_name_for_sn() -> None:
    entry = LAYOUT.user_entry(PublishedUser(login="li", display_name="李娜"))
    assert entry.text("sn") == "李娜"
    assert entry.values("givenName") == () and entry.values("ou") == ()


@pytest.mark.parametrize("hash_", [HASH, None])
def test_locked_user_or_user_without_hash_has_no_user_password(hash_: str | None) -> None:
    entry = LAYOUT.user_entry(
        PublishedUser(login="li", display_name="李", password_hash=hash_, locked=hash_ is not None)
    )
    assert entry.values("userPassword") == ()


@pytest.mark.parametrize(
    "bad",
    ["$argon2i$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", "{SSHA}abc", "plain", HASH + "\nuserPassword: x"],
)
def test_only_argon2id_hashes_are_published(bad: str) -> None:
    with pytest.raises(InvalidPublishedValue) as caught:
        LAYOUT.user_entry(PublishedUser(login="li", display_name="李", password_hash=bad))
    assert caught.value.extra["field"] == "password_hash"
    assert bad not in caught.value.detail


@pytest.mark.parametrize("login", ["", " li", "li ", "li\n"])
def test_invalid_logins_are_refused(login: str) -> None:
    with pytest.raises(InvalidPublishedValue):
        LAYOUT.user_entry(PublishedUser(login=login, display_name="李"))


def test_pem_certificates_are_refused() -> None:
    with pytest.raises(InvalidPublishedValue):
        LAYOUT.user_entry(PublishedUser(login="li", display_name="李", certificates=[b"-----BEGIN CERTIFICATE-----"]))


@pytest.mark.parametrize(
    ("email", "published"),
    [
        ("li@gov.example", "li@gov.example"),
        ("li@例子.中国", "li@xn--fsqu00a.xn--fiqs8s"),
        ("李@例子.中国", None),
        ("李@gov.example", None),
        ("no-at-sign-中", None),
        ("", None),
        (None, None),
    ],
)
def test_mail_is_ia5_with_idna_domains(email: str | None, published: str | None) -> None:
    assert publishable_mail(email, login="li") == published


def test_a_mail_that_cannot_be_published_is_logged_without_the_address(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="directory.ldap_mapping"):
        entry = LAYOUT.user_entry(PublishedUser(login="li", display_name="李", email="李娜@例子.中国"))
    assert entry.values("mail") == ()
    assert "'li'" in caplog.text and "李娜@" not in caplog.text


def test_phone_numbers_must_be_printable_strings() -> None:
    assert publishable_phone("+86 (10) 1234-5678") == "+86 (10) 1234-5678"
    assert publishable_phone("010-1234 转 5") is None


def test_department_path_escapes_slashes() -> None:
    assert encode_department_path(("A/B", "C\\D")) == "A\\/B/C\\\\D"


def test_empty_group_names_itself_and_members_are_user_dns_sorted() -> None:
    empty = LAYOUT.group_entry(PublishedGroup(name="空组"))
    assert empty.texts("member") == (f"cn=空组,ou=groups,{BASE}",)
    full = LAYOUT.group_entry(PublishedGroup(name="g", members=["wang", "li", "wang"]))
    assert full.texts("member") == (f"uid=li,ou=people,{BASE}", f"uid=wang,ou=people,{BASE}")


def test_ca_entry_uses_pkica_and_omits_a_missing_crl() -> None:
    entry = LAYOUT.ca_entry(PublishedCA(name="Root", certificate=CERT))
    assert entry.texts("objectClass") == ("top", "applicationProcess", "pkiCA")
    assert entry.values("cACertificate;binary") == (CERT,)
    assert entry.values("certificateRevocationList") == ()
    with_crl = LAYOUT.ca_entry(PublishedCA(name="Root", certificate=CERT, crl=CERT))
    assert with_crl.values("certificateRevocationList;binary") == (CERT,)


def test_expected_entries_orders_parents_first_and_needs_published_parents() -> None:
    entries = LAYOUT.expected_entries(
        departments=[
            PublishedDepartment(id="2", name="信息中心", parent_path=("省政府",)),
            PublishedDepartment(id="1", name="省政府"),
        ]
    )
    assert [e.dn for e in entries][-2:] == [
        f"ou=省政府,ou=departments,{BASE}",
        f"ou=信息中心,ou=省政府,ou=departments,{BASE}",
    ]
    with pytest.raises(InvalidPublishedValue):
        LAYOUT.expected_entries(departments=[PublishedDepartment(id="2", name="信息中心", parent_path=("省政府",))])
    with pytest.raises(InvalidPublishedValue):
        LAYOUT.expected_entries(
            users=[PublishedUser(login="li", display_name="a"), PublishedUser(login="LI", display_name="b")]
        )


# Drift ---------------------------------------------------------------------------


def entry(dn: str, **attributes: object) -> Entry:
    return Entry(dn, attributes)  # type: ignore[arg-type]


def test_diff_is_empty_for_equivalent_entries() -> None:
    expected = [
        entry(
            "uid=a,ou=people,dc=x",
            objectClass=(b"inetOrgPerson",),
            member=(b"uid=b,dc=x",),
            **{"userCertificate;binary": (CERT,)},
        )
    ]
    actual = [
        entry(
            "UID=A, OU=People,DC=X", objectclass=(b"INETORGPERSON",), member=(b"UID=B, DC=X",), userCertificate=(CERT,)
        )
    ]
    assert diff(expected, actual).is_empty
    assert expected == actual


def test_diff_reports_missing_extra_and_changed_entries_in_apply_order() -> None:
    expected = [
        entry("ou=a,dc=x", ou=(b"a",)),
        entry("ou=b,ou=a,dc=x", ou=(b"b",)),
        entry("uid=u,dc=x", cn=(b"U",), userPassword=(b"{ARGON2}secret-hash",)),
    ]
    actual = [
        entry("uid=u,dc=x", cn=(b"u",), description=(b"hand edit",)),
        entry("ou=z,dc=x", ou=(b"z",)),
        entry("ou=y,ou=z,dc=x", ou=(b"y",)),
    ]
    drift = diff(expected, actual)
    assert [e.dn for e in drift.missing] == ["ou=a,dc=x", "ou=b,ou=a,dc=x"]
    assert [e.dn for e in drift.extra] == ["ou=y,ou=z,dc=x", "ou=z,dc=x"]
    (change,) = drift.changed
    assert [(a.name, a.expected, a.actual) for a in change.attributes] == [
        ("cn", (b"U",), (b"u",)),
        ("description", (), (b"hand edit",)),
        ("userPassword", (b"{ARGON2}secret-hash",), ()),
    ]
    assert "secret-hash" not in repr(drift) and "secret-hash" not in drift.summary()
    assert drift.summary().splitlines()[-1] == "changed uid=u,dc=x: cn, description, userPassword"


def test_diff_refuses_duplicate_expected_dns() -> None:
    with pytest.raises(InvalidPublishedValue):
        diff([entry("cn=a,dc=x"), entry("CN=A,dc=x")], [])


# Federation ---------------------------------------------------------------------------


def test_imported_user_uses_the_attribute_map_and_falls_back_to_cn() -> None:
    foreign = entry("cn=Bob,ou=staff,dc=p", sAMAccountName=(b"bob",), cn=(b"Bob Liu",), mail=(b"bob@p.example",))
    user = imported_user_from_entry(foreign, AttributeMap(login="sAMAccountName"))
    assert user is not None
    assert (user.login, user.display_name, user.email, user.dn) == ("bob", "Bob Liu", "bob@p.example", foreign.dn)
    assert imported_user_from_entry(foreign) is None  # no uid


def test_published_values_store_sequences_as_tuples_and_refuse_lone_strings() -> None:
    user = PublishedUser(login="li", display_name="李", department_path=["省政府"], certificates=[CERT])
    assert user.department_path == ("省政府",) and user.certificates == (CERT,)
    assert hash(user) == hash(
        PublishedUser(login="li", display_name="李", department_path=("省政府",), certificates=(CERT,))
    )
    with pytest.raises(InvalidPublishedValue):
        PublishedUser(login="li", display_name="李", department_path="省政府")
    with pytest.raises(InvalidPublishedValue):
        PublishedGroup(name="g", members="li")
    assert "$argon2id" not in repr(PublishedUser(login="li", display_name="李", password_hash=HASH))

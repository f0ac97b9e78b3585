"""Publishing the directory to a real slapd: API to LDAP, binds, lock, outage and replay, poison changes, CAs."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.components.directory import publish_ca
from api.platform import ADMIN_TOKEN_SECRET, Platform
from directory.models import OutboxRow
from directory.outbox import OutboxEntry
from directory.publisher import DirectoryPublisher
from tests.fixtures.slapd import BASE_DN, SYNC_PASSWORD, HengxinSlapd
from tests.integration.directory.platforms import (
    GOOD_PASSWORD,
    directory_settings,
    frozen_clock,
    open_directory_platform,
    outbox_rows,
    publisher_of,
    service_of,
    slapd_platform,
)
from tests.integration.directory.tools import MiniPKI, der, ldapsearch, ldapwhoami

ADMIN = "token:admin"
PEOPLE = f"ou=people,{BASE_DN}"
ZHANG_DN = f"uid=zhangwei,{PEOPLE}"
LINA_DN = f"uid=lina,{PEOPLE}"


def client_for(platform: Platform, *, background: bool = False) -> TestClient:
    if not background:
        platform.services["background_tasks"] = []
    return TestClient(create_app(platform.settings, platform))


def headers(platform: Platform) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"}


def user_entry(slapd: HengxinSlapd, login: str, *attributes: str) -> dict[str, list[bytes]] | None:
    records = ldapsearch(
        slapd.ldap_uri, PEOPLE, *attributes, bind=(slapd.root_dn, slapd.root_pw), search_filter=f"(uid={login})"
    )
    return records[0][1] if records else None


@pytest.fixture
def platform(tmp_path: Path, slapd: HengxinSlapd) -> Iterator[Platform]:
    platform = slapd_platform(tmp_path, slapd)
    yield platform
    platform.close()


def test_user_created_through_the_api_is_published_and_binds_until_locked_or_changed(
    platform: Platform, slapd: HengxinSlapd
) -> None:
    with client_for(platform) as client:
        h = headers(platform)
        assert (
            client.post("/api/v1/departments", json={"code": "county", "name": "东城县人民政府"}, headers=h).status_code
            == 201
        )
        assert (
            client.post(
                "/api/v1/departments", json={"code": "finance", "name": "财政局", "parent": "county"}, headers=h
            ).status_code
            == 201
        )
        created = client.post(
            "/api/v1/users",
            json={
                "login": "zhangwei",
                "display_name": "张伟",
                "given_name": "伟",
                "surname": "张",
                "email": "zhangwei@例子.中国",
                "phone": "+86 10 6512 3456",
                "department": "finance",
                "password": GOOD_PASSWORD,
            },
            headers=h,
        )
        assert created.status_code == 201, created.json()
        assert created.json()["display_name"] == "张伟"
        assert client.get("/api/v1/users/zhangwei", headers=h).json()["department_path"] == ["东城县人民政府", "财政局"]

        report = publisher_of(platform).publish_pending()
        assert (report.applied, report.pending, report.error) == (3, 0, None)
        entry = user_entry(slapd, "zhangwei")
        assert entry is not None
        assert entry["displayname"] == ["张伟".encode()] and entry["cn"] == ["张伟".encode()]
        assert entry["sn"] == ["张".encode()] and entry["givenname"] == ["伟".encode()]
        assert entry["ou"] == ["财政局".encode()]
        assert entry["departmentnumber"] == ["东城县人民政府/财政局".encode()]
        assert entry["mail"] == [b"zhangwei@xn--fsqu00a.xn--fiqs8s"]  # IDNA domain, ASCII local part
        assert entry["userpassword"][0].startswith(b"{ARGON2}$argon2id$")
        assert ldapwhoami(slapd.ldap_uri, ZHANG_DN, GOOD_PASSWORD).returncode == 0
        assert ldapwhoami(slapd.ldap_uri, ZHANG_DN, "Wrong-Password-1").returncode == 49

        assert (
            client.post("/api/v1/users/zhangwei/lock", json={"reason": "调岗"}, headers=h).json()["status"] == "locked"
        )
        publisher_of(platform).publish_pending()
        assert "userpassword" not in user_entry(slapd, "zhangwei")  # type: ignore[operator]
        assert ldapwhoami(slapd.ldap_uri, ZHANG_DN, GOOD_PASSWORD).returncode == 49

        assert client.post("/api/v1/users/zhangwei/unlock", headers=h).status_code == 200
        changed = client.post("/api/v1/users/zhangwei/password", json={"password": "Brand-New-Pass-5"}, headers=h)
        assert changed.status_code == 204
        publisher_of(platform).publish_pending()
        assert ldapwhoami(slapd.ldap_uri, ZHANG_DN, GOOD_PASSWORD).returncode == 49
        assert ldapwhoami(slapd.ldap_uri, ZHANG_DN, "Brand-New-Pass-5").returncode == 0


def test_the_background_publisher_applies_changes_by_itself(platform: Platform, slapd: HengxinSlapd) -> None:
    with client_for(platform, background=True) as client:
        response = client.post(
            "/api/v1/users",
            json={"login": "lina", "display_name": "李娜", "password": GOOD_PASSWORD},
            headers=headers(platform),
        )
        assert response.status_code == 201
        deadline = time.monotonic() + 15
        while user_entry(slapd, "lina", "displayName") is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert user_entry(slapd, "lina", "displayName") == {"displayname": ["李娜".encode()]}
    assert outbox_rows(platform) == []


def test_non_ascii_mail_and_an_empty_group_are_published_as_documented(platform: Platform, slapd: HengxinSlapd) -> None:
    service = service_of(platform)
    service.create_user(ADMIN, login="wangfang", display_name="王芳", email="王芳@例子.中国")
    service.create_group(ADMIN, name="空组")
    publisher_of(platform).publish_pending()
    assert "mail" not in user_entry(slapd, "wangfang")  # type: ignore[operator]
    group_dn = f"cn=空组,ou=groups,{BASE_DN}"
    ((_, group),) = ldapsearch(slapd.ldap_uri, group_dn, "member", scope="base")
    assert group["member"] == [group_dn.encode()]  # groupOfNames needs a member: an empty group names itself
    service.add_group_member(ADMIN, "空组", "wangfang")
    publisher_of(platform).publish_pending()
    ((_, group),) = ldapsearch(slapd.ldap_uri, group_dn, "member", scope="base")
    assert group["member"] == [f"uid=wangfang,{PEOPLE}".encode()]


@pytest.fixture
def restartable_platform(tmp_path: Path, restartable_slapd: HengxinSlapd, database_url: str) -> Iterator[Platform]:
    platform = slapd_platform(tmp_path, restartable_slapd, database_url)
    yield platform
    platform.close()


def test_ten_changes_made_while_slapd_is_down_arrive_in_order_when_it_returns(
    restartable_platform: Platform, restartable_slapd: HengxinSlapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform, slapd = restartable_platform, restartable_slapd
    service, publisher = service_of(platform), publisher_of(platform)
    service.create_department(ADMIN, code="county", name="县政府")
    service.create_user(ADMIN, login="zhangwei", display_name="张伟", password=GOOD_PASSWORD)
    assert publisher.publish_pending().pending == 0

    slapd.pause()
    changes = [
        lambda: service.create_department(ADMIN, code="finance", name="财政局"),
        lambda: service.create_user(
            ADMIN, login="lina", display_name="李娜", department="finance", password=GOOD_PASSWORD
        ),
        lambda: service.update_user(ADMIN, "zhangwei", display_name="张伟（财政）"),
        lambda: service.create_group(ADMIN, name="预算组"),
        lambda: service.add_group_member(ADMIN, "预算组", "lina"),
        lambda: service.add_group_member(ADMIN, "预算组", "zhangwei"),
        lambda: service.lock_user(ADMIN, "zhangwei"),
        lambda: service.update_department(ADMIN, "finance", parent="county"),
        lambda: service.update_user(ADMIN, "lina", phone="+86 10 8888 0000"),
        lambda: service.set_password(ADMIN, "lina", "Spring-Blossom-7"),
    ]
    for change in changes:
        change()  # writes succeed while LDAP is down
    queued = [r.sequence for r in outbox_rows(platform)]
    assert len(queued) == 10
    for _ in range(3):
        report = publisher.publish_pending()
        assert (report.applied, report.pending, report.error) == (0, 10, "directory.ldap_unavailable")
    assert [a.name for a in platform.alerts.history] == ["directory.publish_stuck"]  # once, at the 3rd attempt
    assert outbox_rows(platform)[0].attempts == 3 and outbox_rows(platform)[0].status == "pending"

    applied: list[int] = []
    original = DirectoryPublisher._apply

    def recording(directory: Any, entry: OutboxEntry) -> None:
        original(directory, entry)
        applied.append(entry.sequence)

    monkeypatch.setattr(DirectoryPublisher, "_apply", staticmethod(recording))
    slapd.resume()
    report = publisher.publish_pending()
    assert (report.applied, report.pending, report.error) == (10, 0, None)
    assert applied == queued  # all ten, in the order they were made

    lina = user_entry(slapd, "lina")
    assert lina is not None
    assert lina["departmentnumber"] == ["县政府/财政局".encode()] and lina["telephonenumber"] == [b"+86 10 8888 0000"]
    zhang = user_entry(slapd, "zhangwei")
    assert zhang is not None and zhang["displayname"] == ["张伟（财政）".encode()] and "userpassword" not in zhang
    ((_, group),) = ldapsearch(slapd.ldap_uri, f"cn=预算组,ou=groups,{BASE_DN}", "member", scope="base")
    assert sorted(group["member"]) == sorted([LINA_DN.encode(), ZHANG_DN.encode()])
    assert ldapwhoami(slapd.ldap_uri, LINA_DN, "Spring-Blossom-7").returncode == 0
    assert ldapwhoami(slapd.ldap_uri, ZHANG_DN, GOOD_PASSWORD).returncode == 49


def test_a_change_ldap_refuses_is_set_aside_with_an_alert_and_later_changes_proceed(
    platform: Platform, slapd: HengxinSlapd
) -> None:
    service, publisher = service_of(platform), publisher_of(platform)
    with platform.transaction() as session:
        session.add(
            OutboxRow(
                entity="user",
                key="broken",
                operation="upsert",
                payload='{"login": "broken", "display_name": "坏", "password_hash": "not-an-argon2-hash"}',
                status="pending",
                created_at=platform.clock(),
                attempts=0,
                alerted=False,
            )
        )
    service.create_user(ADMIN, login="lina", display_name="李娜")
    for attempt in range(1, 5):
        report = publisher.publish_pending()
        assert (report.applied, report.error) == (0, "directory.invalid_published_value"), attempt
    report = publisher.publish_pending()  # the 5th refusal: set aside, the queue moves on
    assert (report.applied, report.set_aside, report.pending) == (1, 1, 0)
    assert user_entry(slapd, "lina") is not None
    assert [a.name for a in platform.alerts.history] == ["directory.publish_stuck", "directory.publish_failed"]
    status = publisher.status()
    assert status.failed == 1 and status.failed_entries[0].key == "broken"
    assert "password_hash must be an argon2id" in (status.failed_entries[0].last_error or "")

    # A full sync repairs what the set-aside change would have done and clears it.
    result = publisher.sync_full()
    assert result.cleared == 1 and publisher.status().failed == 0


def test_ca_entry_carries_a_crl_that_openssl_parses(platform: Platform, slapd: HengxinSlapd, tmp_path: Path) -> None:
    pki = MiniPKI.create("东城县测试根 CA")
    certificate, _ = pki.issue("张伟")
    crl = pki.crl(revoked_serials=(certificate.serial_number,))
    publish_ca(platform, "county-root", der(pki.certificate), der(crl))
    assert publisher_of(platform).publish_pending().applied == 1
    ((dn, entry),) = ldapsearch(slapd.ldap_uri, f"cn=county-root,ou=cas,{BASE_DN}", scope="base")
    assert {v.lower() for v in entry["objectclass"]} >= {b"pkica", b"applicationprocess"}
    assert x509.load_der_x509_certificate(entry["cacertificate;binary"][0]) == pki.certificate
    crl_file = tmp_path / "published.crl"
    crl_file.write_bytes(entry["certificaterevocationlist;binary"][0])
    parsed = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(crl_file), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr
    assert format(certificate.serial_number, "X") in parsed.stdout.replace(":", "").upper()


def test_an_account_that_expires_stops_binding_after_the_sweep(tmp_path: Path, slapd: HengxinSlapd) -> None:
    clock = frozen_clock()
    platform = open_directory_platform(
        directory_settings(tmp_path, slapd=slapd), clock=clock, bind_password=slapd.root_pw
    )
    try:
        service, publisher = service_of(platform), publisher_of(platform)
        service.create_user(
            ADMIN,
            login="temp",
            display_name="临时工",
            password=GOOD_PASSWORD,
            expires_at=clock() + dt.timedelta(hours=1),
        )
        publisher.publish_pending()
        temp_dn = f"uid=temp,{PEOPLE}"
        assert ldapwhoami(slapd.ldap_uri, temp_dn, GOOD_PASSWORD).returncode == 0
        assert service.sweep_expired() == 0
        clock.advance(hours=2)
        assert service.sweep_expired() == 1
        assert service.sweep_expired() == 0
        publisher.publish_pending()
        assert ldapwhoami(slapd.ldap_uri, temp_dn, GOOD_PASSWORD).returncode == 49
        service.update_user(ADMIN, "temp", expires_at=clock() + dt.timedelta(days=30))
        publisher.publish_pending()
        assert ldapwhoami(slapd.ldap_uri, temp_dn, GOOD_PASSWORD).returncode == 0
    finally:
        platform.close()


def test_with_the_shipped_configuration_users_cannot_read_each_others_password(
    tmp_path: Path, hardened_slapd: HengxinSlapd
) -> None:
    settings = directory_settings(tmp_path, slapd=hardened_slapd, directory={"bind_dn": hardened_slapd.sync_dn})
    platform = open_directory_platform(settings, bind_password=SYNC_PASSWORD)
    try:
        service = service_of(platform)
        service.create_user(ADMIN, login="zhangwei", display_name="张伟", password=GOOD_PASSWORD)
        service.create_user(ADMIN, login="lina", display_name="李娜", password="Autumn-Leaf-2026")
        assert publisher_of(platform).publish_pending().applied == 2
        assert ldapwhoami(hardened_slapd.ldap_uri, ZHANG_DN, GOOD_PASSWORD).returncode == 0
        ((_, seen),) = ldapsearch(
            hardened_slapd.ldap_uri, ZHANG_DN, "*", bind=(LINA_DN, "Autumn-Leaf-2026"), scope="base"
        )
        assert seen["displayname"] == ["张伟".encode()]
        assert "userpassword" not in seen
        with platform.transaction() as session:
            assert session.scalars(select(OutboxRow)).all() == []
    finally:
        platform.close()

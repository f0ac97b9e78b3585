"""The directory model through the service, on SQLite and PostgreSQL: tree, users, groups, roles, outbox, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.platform import Platform
from directory.service import DirectoryService
from directory.service_errors import (
    DepartmentCycle,
    DepartmentNotEmpty,
    DepartmentNotFound,
    DuplicateDepartment,
    DuplicateLogin,
    InvalidEmail,
    InvalidLogin,
    PasswordPolicyViolation,
    RoleAssignmentNotFound,
    RoleInUse,
    UserNotFound,
)
from tests.integration.directory.platforms import (
    GOOD_PASSWORD,
    audit_count,
    audit_records,
    directory_settings,
    open_directory_platform,
    outbox_rows,
    refusing_url,
    service_of,
    user_count,
)
from tests.integration.directory.tools import MiniPKI, der

ADMIN = "token:admin"


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    # Publishing on, to a server that refuses: every write must still succeed and queue its change.
    settings = directory_settings(tmp_path, database_url, ldap_url=refusing_url())
    platform = open_directory_platform(settings)
    yield platform
    platform.close()


@pytest.fixture
def service(platform: Platform) -> DirectoryService:
    return service_of(platform)


def county(service: DirectoryService) -> None:
    service.create_department(ADMIN, code="county", name="东城县人民政府")
    service.create_department(ADMIN, code="finance", name="财政局", parent="county")
    service.create_department(ADMIN, code="budget", name="预算科", parent="finance")


def test_department_tree_users_groups_and_scoped_roles(service: DirectoryService, platform: Platform) -> None:
    county(service)
    assert service.get_department("budget").path == ("东城县人民政府", "财政局", "预算科")
    zhang = service.create_user(
        ADMIN,
        login="ZhangWei",
        display_name="张伟",
        email="zhangwei@czj.gov.example",
        phone="+86 10 1234 5678",
        department="budget",
        password=GOOD_PASSWORD,
    )
    assert zhang.login == "zhangwei"  # logins are stored in lower case
    assert (zhang.display_name, zhang.department_path, zhang.status) == (
        "张伟",
        ("东城县人民政府", "财政局", "预算科"),
        "active",
    )
    assert zhang.has_password and zhang.password_expires_at is not None
    service.create_user(ADMIN, login="lina", display_name="李娜", department="finance")
    app = service.create_user(ADMIN, login="svc-oa", display_name="OA 系统", kind="service")
    assert app.kind == "service" and app.password_expires_at is None

    assert [u.login for u in service.list_users(department="finance")] == ["lina"]
    assert [u.login for u in service.list_users(department="finance", include_subdepartments=True)] == [
        "lina",
        "zhangwei",
    ]
    assert [u.login for u in service.list_users(q="张")] == ["zhangwei"]
    assert [u.login for u in service.list_users(kind="service")] == ["svc-oa"]
    assert [u.login for u in service.list_users(after="lina", limit=1)] == ["svc-oa"]

    service.create_group(ADMIN, name="预算编制组")
    group = service.add_group_member(ADMIN, "预算编制组", "zhangwei")
    group = service.add_group_member(ADMIN, "预算编制组", "lina")
    assert group.members == ("lina", "zhangwei")
    assert [g.name for g in service.list_groups(member="lina")] == ["预算编制组"]

    service.create_role(
        ADMIN, name="approver", permissions=["directory.read", "signatures.create"], display_name="审批人"
    )
    service.grant_role(ADMIN, "zhangwei", "approver", department="finance")
    service.grant_role(ADMIN, "zhangwei", "approver", department="finance")  # idempotent
    service.grant_role(ADMIN, "lina", "approver")
    (assignment,) = service.role_assignments("zhangwei")
    assert (assignment.role, assignment.department_code) == ("approver", "finance")
    assert assignment.permissions == ("directory.read", "signatures.create")
    with pytest.raises(RoleAssignmentNotFound):
        service.revoke_role(ADMIN, "zhangwei", "approver")  # the grant is scoped to finance
    with pytest.raises(RoleInUse):
        service.delete_role(ADMIN, "approver")
    service.revoke_role(ADMIN, "zhangwei", "approver", department="finance")
    assert service.role_assignments("zhangwei") == []

    actions = [r.action for r in audit_records(platform, "directory.role.grant")]
    assert actions == ["directory.role.grant", "directory.role.grant"]  # the repeated grant changed nothing


def test_every_write_queues_its_ldap_change_in_order_without_the_password(
    service: DirectoryService, platform: Platform
) -> None:
    county(service)
    service.create_user(ADMIN, login="zhangwei", display_name="张伟", department="budget", password=GOOD_PASSWORD)
    service.create_group(ADMIN, name="全体")
    service.add_group_member(ADMIN, "全体", "zhangwei")
    service.lock_user(ADMIN, "zhangwei", reason="调岗")

    rows = outbox_rows(platform)
    assert [(r.entity, r.operation, r.key) for r in rows] == [
        ("department", "upsert", "东城县人民政府"),
        ("department", "upsert", "东城县人民政府/财政局"),
        ("department", "upsert", "东城县人民政府/财政局/预算科"),
        ("user", "upsert", "zhangwei"),
        ("group", "upsert", "全体"),
        ("group", "upsert", "全体"),
        ("user", "upsert", "zhangwei"),
    ]
    assert [r.sequence for r in rows] == sorted(r.sequence for r in rows)
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)
    created, locked = json.loads(rows[3].payload), json.loads(rows[-1].payload)
    assert created["password_hash"].startswith("$argon2id$") and created["locked"] is False
    assert created["department_path"] == ["东城县人民政府", "财政局", "预算科"]
    assert locked["locked"] is True
    assert json.loads(rows[5].payload)["members"] == ["zhangwei"]
    assert all(GOOD_PASSWORD not in r.payload for r in rows)
    assert len(audit_records(platform, "directory.user.lock")) == 1


def test_cyclic_move_is_refused_and_changes_nothing(service: DirectoryService, platform: Platform) -> None:
    county(service)
    before = (audit_count(platform), len(outbox_rows(platform)))
    for parent in ("budget", "county"):
        with pytest.raises(DepartmentCycle) as caught:
            service.update_department(ADMIN, "county", parent=parent)
        assert caught.value.code == "directory.department_cycle"
    assert service.get_department("county").parent_code is None
    assert (audit_count(platform), len(outbox_rows(platform))) == before

    moved = service.update_department(ADMIN, "budget", parent="county")
    assert moved.path == ("东城县人民政府", "预算科")
    move = outbox_rows(platform)[-1]
    assert (move.entity, move.operation) == ("department", "move")
    assert json.loads(move.payload) == {
        "old_path": ["东城县人民政府", "财政局", "预算科"],
        "new_path": ["东城县人民政府", "预算科"],
    }


def test_bad_input_is_refused_with_specific_errors_and_nothing_half_written(
    service: DirectoryService, platform: Platform
) -> None:
    county(service)
    service.create_user(ADMIN, login="zhangwei", display_name="张伟")
    before = (user_count(platform), audit_count(platform), len(outbox_rows(platform)))

    with pytest.raises(DuplicateLogin):
        service.create_user(ADMIN, login="ZHANGWEI", display_name="张伟 2")
    with pytest.raises(DepartmentNotFound):
        service.create_user(ADMIN, login="lina", display_name="李娜", department="nowhere")
    with pytest.raises(InvalidEmail) as caught:
        service.create_user(ADMIN, login="lina", display_name="李娜", email="lina@@example")
    assert caught.value.extra["field"] == "email"
    with pytest.raises(InvalidLogin):
        service.create_user(ADMIN, login="李娜", display_name="李娜")
    with pytest.raises(PasswordPolicyViolation) as policy:
        service.create_user(ADMIN, login="lina", display_name="李娜", password="short")
    assert policy.value.extra["rule"] == "min_length"
    with pytest.raises(DuplicateDepartment):
        service.create_department(ADMIN, code="finance2", name="财政局", parent="county")  # same name, same parent
    with pytest.raises(UserNotFound):
        service.lock_user(ADMIN, "nobody")
    with pytest.raises(DepartmentNotEmpty):
        service.delete_department(ADMIN, "finance")

    assert (user_count(platform), audit_count(platform), len(outbox_rows(platform))) == before


def test_internationalised_email_is_stored_as_given(service: DirectoryService) -> None:
    user = service.create_user(ADMIN, login="wang", display_name="王芳", email="王芳@例子.中国")
    assert user.email == "王芳@例子.中国"  # kept; LDAP leaves it out (mail is IA5String)


def test_certificates_and_ca_are_queued_for_publishing(service: DirectoryService, platform: Platform) -> None:
    pki = MiniPKI.create()
    certificate, _ = pki.issue("张伟")
    service.create_user(ADMIN, login="zhangwei", display_name="张伟")
    user = service.set_user_certificates("zhangwei", [der(certificate)])
    assert user.certificates == 1
    crl = der(pki.crl())
    service.publish_ca("Hengxin Root", der(pki.certificate), crl)
    user_row, ca_row = outbox_rows(platform)[-2:]
    assert len(json.loads(user_row.payload)["certificates"]) == 1
    assert (ca_row.entity, ca_row.key) == ("ca", "Hengxin Root")
    with platform.transaction() as session:
        _, _, _, cas = service.published_state(session)
    assert [(c.name, c.crl) for c in cas] == [("Hengxin Root", crl)]

"""The directory REST API: CRUD, actions, filters, pagination, permissions and problem documents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, create_api_token
from tests.integration.directory.platforms import (
    GOOD_PASSWORD,
    audit_count,
    directory_settings,
    open_directory_platform,
    user_count,
)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    platform = open_directory_platform(directory_settings(tmp_path))
    yield platform
    platform.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.settings, platform)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"
        yield test_client


def problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


def tree(client: TestClient) -> None:
    for body in (
        {"code": "county", "name": "东城县人民政府"},
        {"code": "finance", "name": "财政局", "parent": "county"},
        {"code": "budget", "name": "预算科", "parent": "finance"},
    ):
        assert client.post("/api/v1/departments", json=body).status_code == 201


def test_users_round_trip_with_chinese_names_filters_and_pages(client: TestClient) -> None:
    tree(client)
    created = client.post(
        "/api/v1/users",
        json={
            "login": "zhangwei",
            "display_name": "张伟",
            "department": "budget",
            "email": "zw@czj.gov.example",
            "password": GOOD_PASSWORD,
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert body["display_name"] == "张伟" and body["department_path"] == ["东城县人民政府", "财政局", "预算科"]
    assert body["has_password"] is True and "password" not in body and "password_hash" not in body
    for login, name in (("lina", "李娜"), ("wangfang", "王芳"), ("zhaolei", "赵磊"), ("svc-oa", "OA")):
        assert (
            client.post(
                "/api/v1/users", json={"login": login, "display_name": name, "department": "finance"}
            ).status_code
            == 201
        )
    assert client.get("/api/v1/users/zhangwei").json()["display_name"] == "张伟"

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/users", params=params).json()
        seen += [u["login"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["lina", "svc-oa", "wangfang", "zhangwei", "zhaolei"]
    by_department = client.get("/api/v1/users", params={"department": "finance"}).json()["items"]
    assert [u["login"] for u in by_department] == ["lina", "svc-oa", "wangfang", "zhaolei"]
    subtree = client.get("/api/v1/users", params={"department": "finance", "subdepartments": True}).json()["items"]
    assert len(subtree) == 5
    assert [u["login"] for u in client.get("/api/v1/users", params={"q": "王"}).json()["items"]] == ["wangfang"]

    assert client.post("/api/v1/users/lina/disable", json={"reason": "离职"}).json()["status"] == "disabled"
    disabled = client.get("/api/v1/users", params={"status": "disabled"}).json()["items"]
    assert [u["login"] for u in disabled] == ["lina"]
    assert client.post("/api/v1/users/lina/unlock").json()["code"] == "directory.invalid_state"
    assert client.post("/api/v1/users/lina/enable").json()["status"] == "active"

    cleared = client.patch("/api/v1/users/zhangwei", json={"email": None, "display_name": "张伟明"}).json()
    assert (cleared["email"], cleared["display_name"]) == (None, "张伟明")


def test_groups_roles_and_scoped_grants(client: TestClient) -> None:
    tree(client)
    client.post("/api/v1/users", json={"login": "zhangwei", "display_name": "张伟"})
    assert client.post("/api/v1/groups", json={"name": "预算编制组"}).status_code == 201
    group = client.put("/api/v1/groups/预算编制组/members/zhangwei").json()
    assert group["members"] == ["zhangwei"]
    assert client.get("/api/v1/users/zhangwei").json()["groups"] == ["预算编制组"]
    assert client.delete("/api/v1/groups/预算编制组/members/zhangwei").json()["members"] == []

    role = client.post(
        "/api/v1/roles",
        json={"name": "approver", "display_name": "审批人", "permissions": ["signatures.create", "directory.read"]},
    )
    assert role.status_code == 201 and role.json()["permissions"] == ["directory.read", "signatures.create"]
    granted = client.post("/api/v1/users/zhangwei/roles", json={"role": "approver", "department": "finance"})
    assert granted.status_code == 201 and granted.json()["department"] == "finance"
    assert [r["department"] for r in client.get("/api/v1/users/zhangwei/roles").json()] == ["finance"]
    problem(client.delete("/api/v1/roles/approver"), 409, "directory.role_in_use")
    problem(client.delete("/api/v1/users/zhangwei/roles/approver"), 404, "directory.role_assignment_not_found")
    assert client.delete("/api/v1/users/zhangwei/roles/approver", params={"department": "finance"}).status_code == 204
    assert client.delete("/api/v1/roles/approver").status_code == 204
    problem(
        client.post("/api/v1/roles", json={"name": "god", "permissions": ["root.everything"]}),
        400,
        "directory.unknown_permission",
    )


def test_bad_input_gives_specific_problems_and_writes_nothing(client: TestClient, platform: Platform) -> None:
    tree(client)
    client.post("/api/v1/users", json={"login": "zhangwei", "display_name": "张伟"})
    before = (user_count(platform), audit_count(platform))

    duplicate = problem(
        client.post(
            "/api/v1/users", json={"login": "ZhangWei", "display_name": "张伟"}, headers={"Accept-Language": "zh-CN"}
        ),
        409,
        "directory.duplicate_login",
    )
    assert duplicate["title"] == "登录名已被使用" and duplicate["login"] == "zhangwei"
    problem(
        client.post("/api/v1/users", json={"login": "lina", "display_name": "李娜", "department": "nowhere"}),
        404,
        "directory.department_not_found",
    )
    invalid = problem(
        client.post("/api/v1/users", json={"login": "lina", "display_name": "李娜", "email": "lina@"}),
        400,
        "directory.invalid_email",
    )
    assert invalid["field"] == "email"
    policy = problem(
        client.post("/api/v1/users", json={"login": "lina", "display_name": "李娜", "password": "alllowercaseletters"}),
        400,
        "directory.password_policy",
    )
    assert policy["rule"] == "character_classes"
    problem(client.post("/api/v1/users", json={"login": "lina"}), 400, "request.validation_failed")
    problem(client.patch("/api/v1/departments/county", json={"parent": "budget"}), 400, "directory.department_cycle")
    problem(client.get("/api/v1/users/nobody"), 404, "directory.user_not_found")
    problem(
        client.post("/api/v1/users/zhangwei/password", json={"password": "short"}), 400, "directory.password_policy"
    )
    problem(
        client.post("/api/v1/departments", json={"code": "dup", "name": "财政局", "parent": "county"}),
        409,
        "directory.duplicate_department",
    )
    problem(client.delete("/api/v1/departments/county"), 409, "directory.department_not_empty")

    assert (user_count(platform), audit_count(platform)) == before
    assert client.get("/api/v1/departments/county").json()["parent"] is None


def test_department_move_and_rename(client: TestClient) -> None:
    tree(client)
    moved = client.patch("/api/v1/departments/budget", json={"parent": "county", "name": "预算中心"}).json()
    assert moved["path"] == ["东城县人民政府", "预算中心"] and moved["parent"] == "county"
    top = client.patch("/api/v1/departments/budget", json={"parent": None}).json()
    assert top["path"] == ["预算中心"] and top["parent"] is None
    children = client.get("/api/v1/departments", params={"parent": "county"}).json()["items"]
    assert [d["code"] for d in children] == ["finance"]
    assert client.delete("/api/v1/departments/budget").status_code == 204


def test_readers_may_read_but_not_write(client: TestClient, platform: Platform) -> None:
    reader = create_api_token(platform, "reader", "directory.read")
    headers = {"Authorization": f"Bearer {reader}"}
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    body = problem(
        client.post("/api/v1/users", json={"login": "x", "display_name": "X"}, headers=headers), 403, "auth.forbidden"
    )
    assert body["permission"] == "directory.manage"
    status = client.get("/api/v1/directory/status", headers=headers).json()
    assert status == {
        "publishing": False,
        "pending": 0,
        "failed": 0,
        "oldest_pending_at": None,
        "next": None,
        "failed_entries": [],
    }

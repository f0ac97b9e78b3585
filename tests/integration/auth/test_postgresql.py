"""The row-locking paths (refresh rotation, separation of duties) on PostgreSQL."""

from __future__ import annotations

from tests.integration.auth.conftest import AuthPlatform


def test_refresh_reuse_and_separation_of_duties_on_postgresql(postgres_auth_platform: AuthPlatform) -> None:
    platform = postgres_auth_platform
    platform.person("zhangwei", "audit-administrator")
    refused = platform.client.post("/api/v1/users/zhangwei/roles", json={"role": "system-administrator"},
                                   headers=platform.admin)
    assert (refused.status_code, refused.json()["code"]) == (409, "auth.separation_of_duties")
    first = platform.login("zhangwei").json()
    second = platform.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                        "refresh_token": first["refresh_token"]}).json()
    reuse = platform.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": first["refresh_token"]})
    assert reuse.json()["code"] == "auth.invalid_grant"
    revoked = platform.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert revoked.status_code == 401

"""The route walk again, with Hengxin's own access tokens: a person without roles gets 403 everywhere but
their own account's routes, an expired token 401 with WWW-Authenticate, and nothing changes."""

from __future__ import annotations

from fastapi.routing import APIRoute

from api.auth import PUBLIC_ROUTES, Permission
from tests.integration.api.test_conventions import _all_routes, _concrete, _permission_of, _state
from tests.integration.auth.conftest import AuthPlatform


def test_every_protected_route_refuses_a_jwt_without_the_permission(auth_platform: AuthPlatform) -> None:
    auth_platform.person("nobody")
    client = auth_platform.client
    stale = auth_platform.bearer("nobody")
    checked = 0
    routes = [r for r in _all_routes(client) if isinstance(r, APIRoute)]
    auth_platform.clock.advance(seconds=200)
    fresh = auth_platform.bearer("nobody")  # valid for 300 s more
    auth_platform.clock.advance(seconds=150)  # `stale` expired 50 s ago
    for route in routes:
        permission = _permission_of(route)
        for method in route.methods:
            if (method, route.path) in PUBLIC_ROUTES:
                continue
            assert permission is not None, f"{method} {route.path} declares no permission"
            before = _state(auth_platform.platform)
            expired = client.request(method, _concrete(route.path), headers=stale)
            assert expired.status_code == 401, (method, route.path)
            assert expired.headers["www-authenticate"].startswith("Bearer")
            assert expired.json()["code"] == "auth.unauthenticated"
            if permission != Permission.ACCOUNT_SELF.value:
                denied = client.request(method, _concrete(route.path), headers=fresh)
                assert denied.status_code == 403, (method, route.path, denied.text)
                assert denied.headers["content-type"] == "application/problem+json"
                assert denied.json()["code"] == "auth.forbidden"
            assert _state(auth_platform.platform) == before, f"{method} {route.path} changed state"
            checked += 1
    assert checked > 50


def test_auth_routes_are_public_or_protected_as_documented(auth_platform: AuthPlatform) -> None:
    public = {path for (_, path) in PUBLIC_ROUTES}
    assert {"/api/v1/auth/login", "/oauth/token", "/oauth/revoke", "/.well-known/jwks.json",
            "/.well-known/oauth-authorization-server"} <= public
    assert "/oauth/introspect" not in public
    response = auth_platform.client.post("/oauth/introspect", data={"token": "x"})
    assert (response.status_code, response.json()["code"]) == (401, "auth.unauthenticated")

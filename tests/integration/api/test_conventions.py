"""API conventions every route follows: permissions, problem documents, limits, pagination, language."""

from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.routing import Route

from api.app import create_app
from api.auth import PUBLIC_ROUTES, PermissionCheck
from api.platform import Platform, create_api_token, initialise, open_platform
from core.store.models import APITokenRow, AuditRecordRow
from tests.helpers import make_settings


def _permission_of(route: APIRoute) -> str | None:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, PermissionCheck):
            return dependant.call.permission.value
        stack.extend(dependant.dependencies)
    return None


def _all_routes(client: TestClient) -> list:
    """Routes of the registered routers plus the app's own (docs); checks nothing is added elsewhere."""
    routes = [r for router in client.app.state.routers for r in router.routes]
    routes += [r for r in client.app.routes if isinstance(r, APIRoute | Route)]
    documented = {path for path in client.app.openapi()["paths"]}
    assert documented <= {r.path for r in routes}, "a route was added outside the registered routers"
    return routes


def _concrete(path: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}", "x", path)


def _state(platform: Platform) -> tuple[int, int]:
    with platform.transaction() as session:
        return (session.scalar(select(func.count()).select_from(AuditRecordRow)) or 0,
                session.scalar(select(func.count()).select_from(APITokenRow)) or 0)


def test_every_route_is_public_or_declares_a_permission(client: TestClient, api_platform: Platform) -> None:
    limited = create_api_token(api_platform, "nothing", "system.read")
    checked = 0
    for route in _all_routes(client):
        if not isinstance(route, APIRoute):
            for method in getattr(route, "methods", None) or ():
                assert (method, route.path) in PUBLIC_ROUTES, f"{method} {route.path} is neither public nor protected"
            continue
        permission = _permission_of(route)
        for method in route.methods:
            if (method, route.path) in PUBLIC_ROUTES:
                continue
            assert permission is not None, f"{method} {route.path} declares no permission"
            before = _state(api_platform)
            anonymous = client.request(method, _concrete(route.path))
            assert anonymous.status_code == 401, (method, route.path)
            assert anonymous.headers["content-type"] == "application/problem+json"
            assert anonymous.json()["code"] == "auth.unauthenticated"
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            if permission != "system.read":
                denied = client.request(method, _concrete(route.path), headers={"Authorization": f"Bearer {limited}"})
                assert denied.status_code == 403, (method, route.path)
                assert denied.json()["code"] == "auth.forbidden"
            assert _state(api_platform) == before, f"{method} {route.path} changed state without permission"
            checked += 1
    assert checked >= 3


def test_public_routes_table_lists_only_real_routes(client: TestClient) -> None:
    known = set()
    for route in _all_routes(client):
        for method in getattr(route, "methods", None) or ():
            known.add((method, route.path))
    assert set(PUBLIC_ROUTES) <= known | {("HEAD", p) for _, p in known}


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert {"database", "keys", "audit_key"} <= set(checks)
    assert set(checks.values()) == {"ok"}


def test_readiness_fails_when_the_database_is_gone(client: TestClient, api_platform: Platform) -> None:
    api_platform.engine.dispose()
    Path(api_platform.settings.database_url.removeprefix("sqlite:///")).chmod(0o000)
    (api_platform.settings.data_dir).chmod(0o000)
    try:
        from sqlalchemy import create_engine

        api_platform.engine = create_engine("sqlite:////nonexistent/dir/hengxin.db")
        response = client.get("/readyz")
    finally:
        (api_platform.settings.data_dir).chmod(0o700)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "store.unavailable"


def test_malformed_json_is_a_400_problem_and_changes_nothing(client: TestClient, api_platform: Platform,
                                                             admin_headers: dict[str, str]) -> None:
    before = _state(api_platform)
    response = client.post("/api/v1/tokens", content=b'{"name": "x", "permissions": [',
                           headers={**admin_headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "request.malformed_json"
    assert _state(api_platform) == before


def test_invalid_fields_are_named(client: TestClient, admin_headers: dict[str, str]) -> None:
    response = client.post("/api/v1/tokens", json={"name": "bad name!", "permissions": []}, headers=admin_headers)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "request.validation_failed"
    assert {e["location"] for e in body["errors"]} == {"body.name", "body.permissions"}


def test_unknown_permission_and_duplicate_name(client: TestClient, admin_headers: dict[str, str]) -> None:
    response = client.post("/api/v1/tokens", json={"name": "a", "permissions": ["root.everything"]},
                           headers=admin_headers)
    assert (response.status_code, response.json()["code"]) == (400, "request.invalid")
    created = client.post("/api/v1/tokens", json={"name": "reader", "permissions": ["audit.read"]},
                          headers=admin_headers)
    assert created.status_code == 201
    token = created.json()["token"]
    assert client.get("/api/v1/audit", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    again = client.post("/api/v1/tokens", json={"name": "reader", "permissions": ["audit.read"]},
                        headers=admin_headers)
    assert (again.status_code, again.json()["code"]) == (409, "tokens.duplicate_name")


def test_oversized_body_is_413_and_changes_nothing(client: TestClient, api_platform: Platform,
                                                   admin_headers: dict[str, str]) -> None:
    before = _state(api_platform)
    big = b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'", "permissions": ["*"]}'
    response = client.post("/api/v1/tokens", content=big, headers={**admin_headers,
                                                                     "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "request.body_too_large"
    assert _state(api_platform) == before


def test_oversized_chunked_body_is_413(client: TestClient, admin_headers: dict[str, str]) -> None:
    def chunks():
        for _ in range(40):
            yield b"x" * 100_000

    response = client.post("/api/v1/tokens", content=chunks(), headers={**admin_headers,
                                                                          "Content-Type": "application/json"})
    assert response.status_code == 413


def test_bad_token_is_401(client: TestClient) -> None:
    for header in ("Bearer hxt_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer "):
        response = client.get("/api/v1/audit", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json()["code"] == "auth.unauthenticated"


def test_language_follows_accept_language(client: TestClient) -> None:
    chinese = client.get("/api/v1/audit", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).json()
    english = client.get("/api/v1/audit", headers={"Accept-Language": "en-US,en;q=0.8,zh;q=0.5"}).json()
    default = client.get("/api/v1/audit").json()
    assert chinese["code"] == english["code"] == "auth.unauthenticated"
    assert chinese["title"] == "需要身份认证" and english["title"] == "Authentication required"
    assert default["title"] == "需要身份认证"  # the configured default is zh-CN


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.json()["code"]) == (404, "request.route_not_found")
    wrong = client.delete("/healthz")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "request.method_not_allowed")


def test_request_id_is_echoed_and_generated(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/api/v1/audit")
    assert generated.headers["x-request-id"] == generated.json()["request_id"]


def test_internal_errors_reveal_nothing(client: TestClient, api_platform: Platform,
                                        admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    audit = api_platform.require_audit()

    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail /var/lib/hengxin")

    monkeypatch.setattr(audit, "verify", explode)
    with TestClient(client.app, raise_server_exceptions=False) as quiet:
        response = quiet.post("/api/v1/audit/verify", headers=admin_headers)
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal.error"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


def test_audit_list_paginates_with_a_cursor(client: TestClient, api_platform: Platform,
                                            admin_headers: dict[str, str]) -> None:
    audit = api_platform.require_audit()
    for index in range(7):
        with api_platform.transaction() as session:
            audit.append(session, actor="t", action="page.test", target=str(index))
    seen = []
    cursor = None
    while True:
        params = {"limit": 3, "action": "page.test", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/audit", params=params, headers=admin_headers).json()
        seen += [item["target"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [str(i) for i in range(7)]
    bad = client.get("/api/v1/audit", params={"cursor": "!!!"}, headers=admin_headers)
    assert (bad.status_code, bad.json()["code"]) == (400, "request.invalid")


def test_rate_limit_answers_429_and_spares_other_clients(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var", server={"rate_limit_per_minute": 60, "rate_limit_burst": 5,
                                                       "trusted_proxies": ["10.9.0.0/16"]})
    initialise(settings)
    platform = open_platform(settings)
    try:
        app = create_app(settings, platform)
        with TestClient(app, client=("192.0.2.10", 5000)) as noisy, \
                TestClient(app, client=("192.0.2.20", 5000)) as quiet, \
                TestClient(app, client=("10.9.0.5", 5000)) as proxy:
            statuses = [noisy.get("/api/v1/audit").status_code for _ in range(8)]
            assert statuses[:5] == [401] * 5
            assert statuses[5:] == [429] * 3
            response = noisy.get("/api/v1/audit")
            assert response.json()["code"] == "request.rate_limited"
            assert int(response.headers["retry-after"]) >= 1
            assert noisy.get("/healthz").status_code == 200  # probes are never limited
            assert quiet.get("/api/v1/audit").status_code == 401  # another client is not limited
            # Behind a trusted proxy the forwarded address is the client: the noisy one stays limited.
            forwarded = proxy.get("/api/v1/audit", headers={"X-Forwarded-For": "192.0.2.10"})
            assert forwarded.status_code == 429
            # An untrusted peer cannot pick its identity with the header.
            spoofed = quiet.get("/api/v1/audit", headers={"X-Forwarded-For": "198.51.100.1"})
            assert spoofed.status_code == 401
    finally:
        platform.close()


def test_invalid_trusted_proxy_is_a_configuration_error(tmp_path: Path) -> None:
    from core.config import load_settings
    from core.errors import ConfigurationError

    config = tmp_path / "hengxin.toml"
    config.write_text('[server]\ntrusted_proxies = ["not-an-address"]\n')
    with pytest.raises(ConfigurationError, match="server.trusted_proxies"):
        load_settings(config)


def test_a_request_over_the_time_limit_gets_503_and_others_are_served_meanwhile(tmp_path: Path) -> None:
    import asyncio
    import threading
    import time

    settings = make_settings(tmp_path / "var", server={"request_timeout_seconds": 0.5})
    initialise(settings)
    platform = open_platform(settings)
    try:
        app = create_app(settings, platform)

        async def slow() -> dict[str, str]:  # a handler that would take 30 s
            await asyncio.sleep(30)
            return {"status": "late"}

        app.add_api_route("/test/slow", slow, methods=["GET"])
        with TestClient(app) as client:
            results: dict[str, object] = {}

            def call_slow() -> None:
                started = time.monotonic()
                response = client.get("/test/slow")
                results["slow"] = (response.status_code, response.json()["code"], time.monotonic() - started)

            worker = threading.Thread(target=call_slow)
            worker.start()
            time.sleep(0.1)
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            results["healthz_seconds"] = time.monotonic() - started
            worker.join(10)
        status, code, took = results["slow"]  # type: ignore[misc]
        assert (status, code) == (503, "request.timeout")
        assert took < 5  # cut at the limit, not after the handler's 30 s
        assert results["healthz_seconds"] < 0.5  # type: ignore[operator]
    finally:
        platform.close()

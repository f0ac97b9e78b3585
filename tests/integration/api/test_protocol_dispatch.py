"""The protocol dispatcher: OCSP and RFC 3161 requests go to plain ASGI handlers ahead of FastAPI's router,
inside the middleware stack, so request ids, rate and body limits apply to them as to every route."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.ocsp import OCSPResponseStatus, load_der_ocsp_response
from fastapi.testclient import TestClient

from api.app import create_app
from api.middleware import ProtocolDispatch
from api.platform import Platform, initialise, open_platform
from api.routes.protocol_ca import ocsp_get_asgi, ocsp_post_asgi
from api.routes.timestamp import tsa_asgi
from tests.helpers import make_settings

# -- the dispatcher alone ---------------------------------------------------------------------------------


class Recorder:
    """An ASGI app (the routes) and handlers that note who got each request."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def routes(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(f"routes {scope['method']} {scope['path']}")

    def handler(self, name: str, answers: bool = True) -> Any:
        async def handle(scope: Any, receive: Any, send: Any) -> bool:
            self.seen.append(f"{name} {scope['method']} {scope['path']}")
            return answers

        return handle


async def _nothing() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _drop(message: Any) -> None:
    return None


def call(dispatch: ProtocolDispatch, method: str, path: str, kind: str = "http") -> None:
    asyncio.run(dispatch({"type": kind, "method": method, "path": path, "headers": []}, _nothing, _drop))


def test_exact_and_prefix_paths_reach_their_handlers_and_the_rest_the_routes() -> None:
    seen = Recorder()
    dispatch = ProtocolDispatch(
        seen.routes, tables=[{("POST", "/ocsp"): seen.handler("post"), ("GET", "/ocsp/"): seen.handler("get")}]
    )
    call(dispatch, "POST", "/ocsp")
    call(dispatch, "GET", "/ocsp/MEUwQzBBMD8wPTAJBgUrDgMCGgUABBQ")
    call(dispatch, "GET", "/ocsp")  # no request in the path: the route answers it
    call(dispatch, "POST", "/ocsp/extra")  # POST is exact only
    call(dispatch, "PUT", "/ocsp")
    call(dispatch, "POST", "/ocspx")
    assert seen.seen == [
        "post POST /ocsp",
        "get GET /ocsp/MEUwQzBBMD8wPTAJBgUrDgMCGgUABBQ",
        "routes GET /ocsp",
        "routes POST /ocsp/extra",
        "routes PUT /ocsp",
        "routes POST /ocspx",
    ]


def test_a_declining_handler_leaves_the_request_to_the_routes() -> None:
    seen = Recorder()
    dispatch = ProtocolDispatch(seen.routes, tables=[{("POST", "/tsa"): seen.handler("tsa", answers=False)}])
    call(dispatch, "POST", "/tsa")
    assert seen.seen == ["tsa POST /tsa", "routes POST /tsa"]


def test_non_http_scopes_go_straight_to_the_app() -> None:
    seen = Recorder()
    dispatch = ProtocolDispatch(seen.routes, tables=[{("POST", "/tsa"): seen.handler("tsa")}])
    call(dispatch, "POST", "/tsa", kind="websocket")
    assert seen.seen == ["routes POST /tsa"]


def test_two_handlers_for_one_endpoint_are_refused() -> None:
    seen = Recorder()
    with pytest.raises(ValueError, match="two protocol handlers for POST /tsa"):
        ProtocolDispatch(seen.routes, tables=[{("POST", "/tsa"): seen.handler("a")},
                                              {("post", "/tsa"): seen.handler("b")}])
    with pytest.raises(ValueError, match="GET /ocsp/"):
        ProtocolDispatch(seen.routes, tables=[{("GET", "/ocsp/"): seen.handler("a")},
                                              {("GET", "/ocsp/"): seen.handler("b")}])


def test_tables_are_copied_when_the_dispatcher_is_built() -> None:
    seen = Recorder()
    table = {("POST", "/tsa"): seen.handler("tsa")}
    dispatch = ProtocolDispatch(seen.routes, tables=[table])
    table.clear()
    assert dispatch.handler_for("POST", "/tsa") is not None


# -- the application's dispatcher ---------------------------------------------------------------------------


def dispatcher_of(app: Any) -> ProtocolDispatch:
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, ProtocolDispatch):
        layer = getattr(layer, "app", None)
    assert isinstance(layer, ProtocolDispatch), "the application has no protocol dispatcher"
    return layer


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    settings = make_settings(tmp_path / "var", server={"rate_limit_per_minute": 60, "rate_limit_burst": 3,
                                                       "max_body_bytes": 64 * 1024})
    initialise(settings)
    opened = open_platform(settings)
    yield opened
    opened.close()


def test_the_application_dispatches_ocsp_and_tsa_innermost(platform: Platform) -> None:
    app = create_app(platform.settings, platform)
    assert app.user_middleware[-1].cls is ProtocolDispatch
    with TestClient(app):
        dispatch = dispatcher_of(app)
        assert dispatch.handler_for("POST", "/ocsp") is ocsp_post_asgi
        assert dispatch.handler_for("GET", "/ocsp/MEUw") is ocsp_get_asgi
        assert dispatch.handler_for("POST", "/tsa") is tsa_asgi
        assert dispatch.handler_for("POST", "/api/v1/certificates") is None


def test_the_middleware_stack_runs_around_dispatched_requests(platform: Platform) -> None:
    app = create_app(platform.settings, platform)
    with TestClient(app, client=("192.0.2.10", 5000)) as client:
        answer = client.post("/ocsp", content=b"\x30\x03\x02\x01\x01",
                             headers={"Content-Type": "application/ocsp-request", "X-Request-Id": "ocsp-1"})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "ocsp-1"  # request context ran
        assert load_der_ocsp_response(answer.content).response_status == OCSPResponseStatus.MALFORMED_REQUEST

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"\x00" * 10_000

        too_big = client.post("/ocsp", content=chunks(), headers={"Content-Type": "application/ocsp-request"})
        assert too_big.status_code == 413  # the body limit applies while the handler reads
        assert too_big.json()["code"] == "request.body_too_large"

        third = client.post("/ocsp", content=b"\x30\x00", headers={"Content-Type": "application/ocsp-request"})
        assert third.status_code == 200
        limited = client.post("/ocsp", content=b"\x30\x00", headers={"Content-Type": "application/ocsp-request"})
        assert limited.status_code == 429  # the burst of three is spent: the rate limit applies too
        assert limited.json()["code"] == "request.rate_limited"

"""``tsa_asgi``, the plain ASGI ``POST /tsa`` the application dispatches to ahead of FastAPI's router.

It must answer exactly as the route does where it answers, and leave everything else (wrong content type,
no declared length, authentication) to the route, having read and sent nothing.  The application's protocol
dispatcher (:class:`api.middleware.ProtocolDispatch`) hands the requests to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.platform import Platform
from api.routes.timestamp import PROTOCOL_ENDPOINTS, tsa_asgi
from tests.integration.protocol_dispatch import client_with as dispatching
from tests.integration.timestamp.tsa_platform import counts, tsa_platform
from timestamp.asn1 import TimeStampResp
from timestamp.request import build_request

QUERY = {"Content-Type": "application/timestamp-query"}
TAKEN: list[str] = []


async def counted_tsa(scope: Any, receive: Any, send: Any) -> bool:
    answered = await tsa_asgi(scope, receive, send)
    TAKEN.append("taken" if answered else "declined")
    return answered


def client_with(platform: Platform, endpoints: dict[tuple[str, str], Any]) -> Any:
    return dispatching(platform, PROTOCOL_ENDPOINTS, endpoints, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    opened = tsa_platform(tmp_path_factory.mktemp("tsa-asgi"))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def fast(platform: Platform) -> Iterator[TestClient]:
    with client_with(platform, {("POST", "/tsa"): counted_tsa}) as client:
        yield client


@pytest.fixture(scope="module")
def routed(platform: Platform) -> Iterator[TestClient]:
    with client_with(platform, {}) as client:
        yield client


@pytest.fixture(autouse=True)
def fresh_counts() -> None:
    TAKEN.clear()


def test_the_handler_is_registered_for_post_tsa() -> None:
    assert PROTOCOL_ENDPOINTS == {("POST", "/tsa"): tsa_asgi}


def test_a_token_from_the_handler_is_answered_and_recorded_as_the_route_does_it(
    platform: Platform, fast: TestClient, routed: TestClient
) -> None:
    before = counts(platform)
    mine = fast.post("/tsa", content=build_request(b"handler"), headers=QUERY)
    theirs = routed.post("/tsa", content=build_request(b"route"), headers=QUERY)

    assert TAKEN == ["taken"]
    assert mine.status_code == theirs.status_code == 200
    for header in ("content-type", "cache-control", "content-length"):
        assert (header in mine.headers) == (header in theirs.headers)
    assert mine.headers["content-type"] == theirs.headers["content-type"] == "application/timestamp-reply"
    assert mine.headers["cache-control"] == theirs.headers["cache-control"] == "no-store"
    assert mine.headers["x-request-id"]  # the middleware stack ran around the handler
    assert TimeStampResp.load(mine.content)["status"]["status"].native == "granted"
    assert counts(platform) == (before[0] + 2, before[1] + 2)


def test_a_rejection_from_the_handler_is_a_timestamp_reply(fast: TestClient) -> None:
    answer = fast.post("/tsa", content=b"\x30\x03not", headers=QUERY)

    assert TAKEN == ["taken"]
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/timestamp-reply"
    status = TimeStampResp.load(answer.content)["status"]
    assert status["status"].native == "rejection" and status["fail_info"].native == {"bad_data_format"}


def test_a_wrong_content_type_is_left_to_the_route_and_its_problem_document(fast: TestClient) -> None:
    answer = fast.post("/tsa", content=build_request(b"x"), headers={"Content-Type": "application/octet-stream"})

    assert TAKEN == ["declined"]
    assert answer.status_code == 415 and answer.json()["code"] == "request.unsupported_media_type"


def test_a_body_without_declared_length_is_left_to_the_route(fast: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield build_request(b"chunked")

    answer = fast.post("/tsa", content=chunks(), headers=QUERY)

    assert TAKEN == ["declined"]
    assert answer.status_code == 200
    assert TimeStampResp.load(answer.content)["status"]["status"].native == "granted"


def test_an_oversized_declared_body_is_left_to_the_route(fast: TestClient) -> None:
    answer = fast.post("/tsa", content=b"\x30" * (64 * 1024 + 1), headers=QUERY)

    assert "taken" not in TAKEN
    assert answer.status_code == 413


def test_with_authentication_required_the_route_answers(tmp_path_factory: pytest.TempPathFactory) -> None:
    platform = tsa_platform(tmp_path_factory.mktemp("tsa-asgi-auth"), tsa={"require_authentication": True})
    try:
        with client_with(platform, {("POST", "/tsa"): counted_tsa}) as client:
            answer = client.post("/tsa", content=build_request(b"x"), headers=QUERY)
        assert TAKEN == ["declined"]
        assert answer.status_code == 401
    finally:
        platform.close()

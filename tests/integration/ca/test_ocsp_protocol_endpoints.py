"""``ocsp_post_asgi`` and ``ocsp_get_asgi``: OCSP answered as plain ASGI handlers ahead of FastAPI's router.

They must answer exactly as the routes do (same status, headers and, for pre-signed answers, the same bytes
from the shared cache), including malformed requests, conditional GETs and revocations seen at once.  The
application's protocol dispatcher (:class:`api.middleware.ProtocolDispatch`) hands the requests to them.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus, load_der_ocsp_response
from fastapi.testclient import TestClient

from api.platform import Platform, initialise, open_platform
from api.routes.protocol_ca import PROTOCOL_ENDPOINTS, ocsp_get_asgi, ocsp_post_asgi
from ca.service import CAService, IssueRequest
from tests.helpers import make_settings
from tests.integration.ca.conftest import make_csr
from tests.integration.protocol_dispatch import client_with

OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


TAKEN: list[str] = []


def counted(handler: Any) -> Any:
    async def counting(scope: Any, receive: Any, send: Any) -> bool:
        answered = bool(await handler(scope, receive, send))
        if answered:
            TAKEN.append(scope["path"])
        return answered

    return counting


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    settings = make_settings(tmp_path_factory.mktemp("ocsp-asgi") / "var")
    initialise(settings)
    opened = open_platform(settings)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def clients(platform: Platform) -> Iterator[tuple[TestClient, TestClient]]:
    """(handlers dispatched, routes only), on one platform and so one OCSP cache."""
    handlers = {key: counted(handler) for key, handler in PROTOCOL_ENDPOINTS.items()}
    with (
        client_with(platform, PROTOCOL_ENDPOINTS, handlers) as fast,
        client_with(platform, PROTOCOL_ENDPOINTS, {}) as routed,
    ):
        yield fast, routed


def ca_of(platform: Platform) -> CAService:
    service = platform.services["ca"]
    assert isinstance(service, CAService)
    return service


def issue(platform: Platform) -> tuple[x509.Certificate, x509.Certificate]:
    csr, _ = make_csr("ocsp-asgi.example.gov.cn", dns=("ocsp-asgi.example.gov.cn",))
    result = ca_of(platform).issue(IssueRequest(profile="server-tls", csr=csr), actor="test")
    assert result.certificate.certificate is not None
    return result.certificate.certificate, x509.load_der_x509_certificate(result.chain[0])


def request_der(certificate: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def get_path(der: bytes) -> str:
    return "/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")


def same_headers(mine: Any, theirs: Any) -> None:
    for name in ("content-type", "cache-control", "etag", "last-modified", "expires"):
        assert mine.headers.get(name) == theirs.headers.get(name), name


def test_the_handlers_are_registered_for_post_and_get() -> None:
    assert PROTOCOL_ENDPOINTS == {("POST", "/ocsp"): ocsp_post_asgi, ("GET", "/ocsp/"): ocsp_get_asgi}


def test_post_without_nonce_gives_the_routes_answer_byte_for_byte(
    platform: Platform, clients: tuple[TestClient, TestClient]
) -> None:
    fast, routed = clients
    leaf, issuer = issue(platform)
    der = request_der(leaf, issuer)
    before = len(TAKEN)

    theirs = routed.post("/ocsp", content=der, headers=OCSP_REQUEST)
    mine = fast.post("/ocsp", content=der, headers=OCSP_REQUEST)

    assert TAKEN[before:] == ["/ocsp"]
    assert mine.status_code == theirs.status_code == 200
    same_headers(mine, theirs)
    assert mine.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert mine.headers["x-request-id"]
    assert mine.content == theirs.content  # the pre-signed answer, from the cache both share
    assert load_der_ocsp_response(mine.content).certificate_status is OCSPCertStatus.GOOD


def test_post_with_nonce_is_signed_fresh_with_the_nonce(
    platform: Platform, clients: tuple[TestClient, TestClient]
) -> None:
    fast, _ = clients
    leaf, issuer = issue(platform)

    answer = load_der_ocsp_response(fast.post("/ocsp", content=request_der(leaf, issuer, b"\x07" * 16)).content)

    assert answer.response_status is OCSPResponseStatus.SUCCESSFUL
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x07" * 16


def test_get_is_cacheable_conditional_and_matches_the_route(
    platform: Platform, clients: tuple[TestClient, TestClient]
) -> None:
    fast, routed = clients
    leaf, issuer = issue(platform)
    path = get_path(request_der(leaf, issuer))
    before = len(TAKEN)

    theirs = routed.get(path)
    mine = fast.get(path)
    not_modified = fast.get(path, headers={"If-None-Match": mine.headers["etag"]})

    assert len(TAKEN) == before + 2
    assert mine.status_code == theirs.status_code == 200
    same_headers(mine, theirs)
    assert "max-age=" in mine.headers["cache-control"] and mine.content == theirs.content
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == mine.headers["etag"]


def test_malformed_requests_are_malformed_request_answers(clients: tuple[TestClient, TestClient]) -> None:
    fast, routed = clients
    for path in ("/ocsp/%%%not-base64!!", "/ocsp/"):
        mine, theirs = fast.get(path), routed.get(path)
        assert mine.status_code == theirs.status_code == 200
        assert mine.content == theirs.content
        assert load_der_ocsp_response(mine.content).response_status is OCSPResponseStatus.MALFORMED_REQUEST
    garbage = fast.post("/ocsp", content=b"\x30\x03garbage")
    assert load_der_ocsp_response(garbage.content).response_status is OCSPResponseStatus.MALFORMED_REQUEST


def test_a_revocation_is_answered_at_once(platform: Platform, clients: tuple[TestClient, TestClient]) -> None:
    fast, _ = clients
    leaf, issuer = issue(platform)
    der = request_der(leaf, issuer)
    assert load_der_ocsp_response(fast.post("/ocsp", content=der).content).certificate_status is OCSPCertStatus.GOOD

    ca_of(platform).revoke(format(leaf.serial_number, "x"), actor="test", reason="keyCompromise")

    for answer in (fast.post("/ocsp", content=der), fast.get(get_path(der))):
        parsed = load_der_ocsp_response(answer.content)
        assert parsed.certificate_status is OCSPCertStatus.REVOKED
        assert parsed.revocation_reason is x509.ReasonFlags.key_compromise

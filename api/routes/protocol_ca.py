"""Public PKI protocol endpoints: OCSP, CRLs and CA certificates (listed in ``PUBLIC_ROUTES``).

Relying parties reach these without credentials and over plain HTTP.  OCSP
failures are OCSP responses (malformedRequest, unauthorized ...) with HTTP
200, as RFC 5019 section 5 asks; only an unknown CA name in a CRL or
certificate URL is a problem document (404).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cryptography.x509.ocsp import OCSPResponseStatus
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.middleware import read_body
from api.platform import Platform
from api.routes.ca import service_of
from ca.ocsp import MAX_REQUEST_SIZE, build_ocsp_error
from ca.ocsp_responder import OCSPAnswer
from ca.service import CAService

router = APIRouter(tags=["pki"])

OCSP_RESPONSE = "application/ocsp-response"
PKIX_CRL = "application/pkix-crl"
PKIX_CERT = "application/pkix-cert"
PEM = "application/x-pem-file"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_NOT_CACHEABLE = {"Cache-Control": "no-cache, no-store, must-revalidate"}
_MALFORMED = OCSPAnswer(build_ocsp_error(OCSPResponseStatus.MALFORMED_REQUEST), "malformedRequest")


def _http_date(moment: object) -> str:
    return email.utils.format_datetime(moment, usegmt=True)  # type: ignore[arg-type]


def _answers_inline(platform: Platform) -> bool:
    """Whether an OCSP answer is cheaper computed on the event loop than handed to a thread.

    With SQLite the status lookup is a lock-free snapshot read of a local file and a file-backend key signs
    in memory, both in tens of microseconds: less than the thread hand-off.  A PostgreSQL query or an HSM
    or Vault signature waits on the network, so those run in a worker thread and the loop stays free.
    """
    return platform.local_reads and platform.settings.keys.backend == "file"


async def _answer(platform: Platform, service: CAService, der: bytes) -> OCSPAnswer:
    if _answers_inline(platform):
        return service.ocsp_respond(der)
    return await asyncio.to_thread(service.ocsp_respond, der)


def _decode_get(encoded: str) -> bytes | None:
    """The DER request of a GET path segment (base64, URL-encoded, standard or URL-safe alphabet), or None."""
    text = urllib.parse.unquote(encoded).strip()
    try:
        if len(text) > 2 * MAX_REQUEST_SIZE:
            raise ValueError("too long")
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None,
                                validate=True)
    except (binascii.Error, ValueError):
        return None


def _ocsp_headers(service: CAService, answer: OCSPAnswer, *, get: bool,
                  if_none_match: str | None) -> tuple[int, dict[str, str]]:
    """(status, headers) of an OCSP answer: HTTP-cacheable for GET answers without a nonce (RFC 5019 section 6)."""
    if not (get and answer.cacheable and answer.produced_at and answer.next_update):
        return 200, _NOT_CACHEABLE
    remaining = int((answer.next_update - service.clock()).total_seconds())
    max_age = max(0, min(remaining, int(service.options.ocsp_max_age.total_seconds())))
    etag = f'"{answer.etag}"'
    headers = {
        "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
        "ETag": etag,
        "Last-Modified": _http_date(answer.produced_at),
        "Expires": _http_date(answer.next_update),
    }
    return (304 if if_none_match == etag else 200), headers


def _ocsp_response(request: Request, answer: OCSPAnswer, *, get: bool) -> Response:
    status, headers = _ocsp_headers(service_of(request), answer, get=get,
                                    if_none_match=request.headers.get("if-none-match"))
    if status == 304:
        return Response(status_code=304, headers=headers)
    return Response(content=answer.der, media_type=OCSP_RESPONSE, headers=headers)


@router.post("/ocsp", summary="OCSP (RFC 6960) over POST", response_class=Response,
             responses={200: {"content": {OCSP_RESPONSE: {}}}})
async def ocsp_post(request: Request) -> Response:
    body = await request.body()
    answer = await _answer(request.app.state.platform, service_of(request), body)
    return _ocsp_response(request, answer, get=False)


# Left out of the OpenAPI document: OpenAPI cannot describe a parameter spanning several path segments
# (the base64 request may contain '/').  docs/ca.md describes it.
@router.get("/ocsp/{encoded:path}", summary="OCSP (RFC 6960 appendix A, RFC 5019) over GET", response_class=Response,
            include_in_schema=False)
async def ocsp_get(request: Request, encoded: str) -> Response:
    # The path is the base64 DER request, URL-encoded; base64 may contain '/', hence the path converter.
    der = _decode_get(encoded)
    if der is None:
        return _ocsp_response(request, _MALFORMED, get=True)
    answer = await _answer(request.app.state.platform, service_of(request), der)
    return _ocsp_response(request, answer, get=True)


# -- the same endpoints as plain ASGI handlers -----------------------------------------------------------
# OCSP is the hot path of the platform.  Reaching a route through FastAPI's router (every route before it
# is matched, twice) and its request handling cost more than answering from the cache, so these handlers
# answer the same requests straight from the ASGI scope; the application's protocol dispatcher calls them
# inside the middleware stack (request ids, limits and timeouts still apply).  They return False, having
# read and sent nothing, for anything they leave to the routes above.


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if status != 304:
        raw += [(b"content-type", OCSP_RESPONSE.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body if status != 304 else b""})


def _platform_and_service(scope: Scope) -> tuple[Platform, CAService] | None:
    platform = scope["app"].state.platform
    service = platform.services.get("ca") if platform is not None else None
    return (platform, service) if isinstance(service, CAService) else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def ocsp_post_asgi(scope: Scope, receive: Receive, send: Send) -> bool:
    """``POST /ocsp`` as :func:`ocsp_post` answers it."""
    found = _platform_and_service(scope)
    if found is None:
        return False
    platform, service = found
    answer = await _answer(platform, service, await read_body(receive))
    await _send(send, 200, _NOT_CACHEABLE, answer.der)
    return True


async def ocsp_get_asgi(scope: Scope, receive: Receive, send: Send) -> bool:
    """``GET /ocsp/{request}`` as :func:`ocsp_get` answers it."""
    found = _platform_and_service(scope)
    if found is None:
        return False
    platform, service = found
    der = _decode_get(scope["path"].removeprefix("/ocsp/"))
    answer = _MALFORMED if der is None else await _answer(platform, service, der)
    status, headers = _ocsp_headers(service, answer, get=True, if_none_match=_header(scope, b"if-none-match"))
    await _send(send, status, headers, answer.der)
    return True


# (method, path) -> handler; a path ending in "/" matches every path below it.
PROTOCOL_ENDPOINTS: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[bool]]] = {
    ("POST", "/ocsp"): ocsp_post_asgi,
    ("GET", "/ocsp/"): ocsp_get_asgi,
}


def _crl(request: Request, name: str, pem: bool) -> Response:
    service = service_of(request)
    crl = service.latest_crl(name)
    now = service.clock()
    remaining = int((crl.next_update - now).total_seconds())
    max_age = max(0, min(remaining, int(service.options.crl_min_interval.total_seconds())))
    headers = {
        "Cache-Control": f"max-age={max_age}, public, no-transform",
        "ETag": f'"{name}-{crl.crl_number}"',
        "Last-Modified": _http_date(crl.this_update),
        "Expires": _http_date(crl.next_update),
    }
    if pem:
        return Response(content=crl.pem, media_type=PEM, headers=headers)
    return Response(content=crl.der, media_type=PKIX_CRL, headers=headers)


@router.get("/crl/{name}.crl", summary="The CA's newest CRL (DER)", response_class=Response,
            responses={200: {"content": {PKIX_CRL: {}}}})
def crl_der(request: Request, name: str) -> Response:
    return _crl(request, name, pem=False)


@router.get("/crl/{name}.pem", summary="The CA's newest CRL (PEM)", response_class=Response)
def crl_pem(request: Request, name: str) -> Response:
    return _crl(request, name, pem=True)


@router.get("/ca/{name}.crt", summary="The CA's certificate (DER)", response_class=Response,
            responses={200: {"content": {PKIX_CERT: {}}}})
def ca_certificate_der(request: Request, name: str) -> Response:
    info = service_of(request).get_ca(name)
    return Response(content=info.certificate_der, media_type=PKIX_CERT,
                    headers={"Cache-Control": "max-age=3600, public"})


@router.get("/ca/{name}.pem", summary="The CA's certificate (PEM)", response_class=Response)
def ca_certificate_pem(request: Request, name: str) -> Response:
    info = service_of(request).get_ca(name)
    return Response(content=info.certificate_pem, media_type=PEM, headers={"Cache-Control": "max-age=3600, public"})

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

from cryptography.x509.ocsp import OCSPResponseStatus
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.routes.ca import service_of
from ca.ocsp import MAX_REQUEST_SIZE, build_ocsp_error
from ca.ocsp_responder import OCSPAnswer

router = APIRouter(tags=["pki"])

OCSP_RESPONSE = "application/ocsp-response"
PKIX_CRL = "application/pkix-crl"
PKIX_CERT = "application/pkix-cert"
PEM = "application/x-pem-file"


def _http_date(moment: object) -> str:
    return email.utils.format_datetime(moment, usegmt=True)  # type: ignore[arg-type]


def _ocsp_response(request: Request, answer: OCSPAnswer, *, get: bool) -> Response:
    headers: dict[str, str] = {}
    if get and answer.cacheable and answer.produced_at and answer.next_update:
        service = service_of(request)
        now = service.clock()
        remaining = int((answer.next_update - now).total_seconds())
        max_age = max(0, min(remaining, int(service.options.ocsp_max_age.total_seconds())))
        etag = f'"{answer.etag}"'
        headers = {
            "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
            "ETag": etag,
            "Last-Modified": _http_date(answer.produced_at),
            "Expires": _http_date(answer.next_update),
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
    else:
        headers = {"Cache-Control": "no-cache, no-store, must-revalidate"}
    return Response(content=answer.der, media_type=OCSP_RESPONSE, headers=headers)


@router.post("/ocsp", summary="OCSP (RFC 6960) over POST", response_class=Response,
             responses={200: {"content": {OCSP_RESPONSE: {}}}})
async def ocsp_post(request: Request) -> Response:
    body = await request.body()
    service = service_of(request)
    # Signing and the status query are blocking: leave the event loop free.
    answer = await asyncio.to_thread(service.ocsp_respond, body)
    return _ocsp_response(request, answer, get=False)


# Left out of the OpenAPI document: OpenAPI cannot describe a parameter spanning several path segments
# (the base64 request may contain '/').  docs/ca.md describes it.
@router.get("/ocsp/{encoded:path}", summary="OCSP (RFC 6960 appendix A, RFC 5019) over GET", response_class=Response,
            include_in_schema=False)
def ocsp_get(request: Request, encoded: str) -> Response:
    # The path is the base64 DER request, URL-encoded; base64 may contain '/', hence the path converter.
    text = urllib.parse.unquote(encoded).strip()
    try:
        if len(text) > 2 * MAX_REQUEST_SIZE:
            raise ValueError("too long")
        der = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None,
                               validate=True)
    except (binascii.Error, ValueError):
        return _ocsp_response(
            request, OCSPAnswer(build_ocsp_error(OCSPResponseStatus.MALFORMED_REQUEST), "malformedRequest"), get=True
        )
    return _ocsp_response(request, service_of(request).ocsp_respond(der), get=True)


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

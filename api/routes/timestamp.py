"""The timestamp authority over HTTP: the RFC 3161 endpoint ``/tsa`` and ``/api/v1/timestamps``.

``POST /tsa`` takes exactly ``application/timestamp-query`` and answers
``application/timestamp-reply`` (RFC 3161 section 3.4).  Whatever the TSA
decides about a well-formed HTTP request is a ``TimeStampResp``: granted, or a
rejection with its failure info.  Rejections caused by the request (badAlg,
badDataFormat, unacceptedPolicy, unacceptedExtension) come with HTTP 200;
those caused by the server (timeNotAvailable, systemFailure) with HTTP 503 and
``Retry-After``, so load balancers and monitoring see them.  A wrong content
type (415), a body over 64 KiB (413) and missing credentials when
``[tsa] require_authentication`` is set (401/403) are problem documents: they
are refused before anything is parsed.

``/tsa`` is listed in ``PUBLIC_ROUTES``; with ``require_authentication`` the
handler itself runs the same permission check (``timestamps.issue``) a
protected route declares, because the route table is built before the
settings are known.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import Permission, PermissionCheck, client_address, platform_of, require
from api.errors import BodyTooLarge, UnsupportedMediaType
from api.middleware import read_body
from api.pagination import Page, PageParams, page_of
from api.platform import Platform
from core.clock import isoformat_utc
from core.errors import InvalidInput
from timestamp.errors import TimestampError, TimestampRequestInvalid
from timestamp.service import ANONYMOUS, StoredTimestamp, TimestampQuery, TimestampService
from timestamp.service_errors import TSAUnavailable
from timestamp.tsa import Failure
from timestamp.verify import VerifiedTimestamp

router = APIRouter(tags=["timestamp"])

TIMESTAMP_QUERY = "application/timestamp-query"
TIMESTAMP_REPLY = "application/timestamp-reply"
MAX_REQUEST_BYTES = 64 * 1024  # a TimeStampReq is ~60 bytes; nonces and extensions leave it far below this
RETRY_AFTER_SECONDS = 5

# Rejections that say the server cannot issue now, not that the request is wrong.
_SERVER_FAILURES = frozenset({Failure.TIME_NOT_AVAILABLE.rfc_name, Failure.SYSTEM_FAILURE.rfc_name})
_ISSUE_CHECK = PermissionCheck(Permission.TIMESTAMPS_ISSUE)


def service_of(request: Request) -> TimestampService:
    service = platform_of(request).services.get("tsa")
    if not isinstance(service, TimestampService):
        raise TSAUnavailable(
            "the timestamp authority is not initialised: run `hengxin init`",
            detail_zh="时间戳服务未初始化，请运行 `hengxin init`",
        )
    return service


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes (by Content-Length or while reading): 413."""
    too_large = BodyTooLarge(
        f"a timestamp request is at most {limit} bytes", detail_zh=f"时间戳请求不能超过 {limit} 字节", limit=limit
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# -- RFC 3161 over HTTP ----------------------------------------------------------------------------------


@router.post(
    "/tsa",
    summary="RFC 3161 time-stamping (application/timestamp-query in, application/timestamp-reply out)",
    response_class=Response,
    responses={
        200: {"content": {TIMESTAMP_REPLY: {}}, "description": "A TimeStampResp: granted or rejected."},
        503: {"content": {TIMESTAMP_REPLY: {}}, "description": "timeNotAvailable or systemFailure."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {TIMESTAMP_QUERY: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def tsa(request: Request) -> Response:
    platform = platform_of(request)
    actor = ANONYMOUS
    if platform.settings.tsa.require_authentication:
        actor = (await _ISSUE_CHECK(request)).actor
    if _media_type(request) != TIMESTAMP_QUERY:
        raise UnsupportedMediaType(
            f"send the request as {TIMESTAMP_QUERY}",
            detail_zh=f"请求的内容类型必须为 {TIMESTAMP_QUERY}",
            accepted=TIMESTAMP_QUERY,
        )
    body = await _read_body(request, MAX_REQUEST_BYTES)
    status, headers, der = await _stamp(platform, service_of(request), body, actor, client_address(request))
    return Response(content=der, status_code=status, media_type=TIMESTAMP_REPLY, headers=headers)


async def _stamp(
    platform: Platform, service: TimestampService, body: bytes, actor: str, source: str
) -> tuple[int, dict[str, str], bytes]:
    """Stamp ``body``: (HTTP status, headers, DER TimeStampResp)."""
    answer = await service.stamp_async(
        body, actor=actor, source=source, sign_in_thread=platform.settings.keys.backend != "file"
    )
    if answer.record.failure in _SERVER_FAILURES:
        return 503, {"Cache-Control": "no-store", "Retry-After": str(RETRY_AFTER_SECONDS)}, answer.der
    return 200, _GRANTED_HEADERS, answer.der


_GRANTED_HEADERS = {"Cache-Control": "no-store"}

# -- /tsa as a plain ASGI handler ------------------------------------------------------------------------
# Timestamping is a hot path: reaching the route through FastAPI's router (every route before it is
# matched, twice) and building its Request cost about as much as issuing the token.  The application's
# protocol dispatcher calls this handler inside the middleware stack (request ids, limits and timeouts
# still apply).  It answers only the ordinary case, a public TSA sent an application/timestamp-query body
# of declared length within the limit, and returns False, having read and sent nothing, for everything else
# (authentication, a wrong content type, a missing or excessive length, no TSA yet): the route above then
# answers, with its problem documents.

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def tsa_asgi(scope: Scope, receive: Receive, send: Send) -> bool:
    """``POST /tsa`` as :func:`tsa` answers it."""
    platform = scope["app"].state.platform
    if platform is None or platform.settings.tsa.require_authentication:
        return False
    service = platform.services.get("tsa")
    if not isinstance(service, TimestampService) or service.credentials is None:
        return False
    media_type = length = None
    for key, value in scope["headers"]:
        if key == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
        elif key == b"content-length":
            length = value
    if media_type != _TIMESTAMP_QUERY_BYTES or length is None or not length.isdigit():
        return False
    if int(length) > MAX_REQUEST_BYTES:
        return False
    body = await read_body(receive)
    source = str(scope.get("state", {}).get("client_address", "unknown"))
    status, headers, der = await _stamp(platform, service, body, ANONYMOUS, source)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw += [(b"content-type", _TIMESTAMP_REPLY_BYTES), (b"content-length", str(len(der)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": der})
    return True


_TIMESTAMP_QUERY_BYTES = TIMESTAMP_QUERY.encode()
_TIMESTAMP_REPLY_BYTES = TIMESTAMP_REPLY.encode()

# (method, path) -> handler, for the application's protocol dispatcher.
PROTOCOL_ENDPOINTS: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[bool]]] = {
    ("POST", "/tsa"): tsa_asgi,
}


# -- records ---------------------------------------------------------------------------------------------


class TimestampOut(BaseModel):
    serial: str = Field(description="Serial number of the token, hexadecimal.")
    gen_time: str
    hash_algorithm: str
    message_imprint: str = Field(description="The hashed data, hexadecimal.")
    policy: str
    nonce: str | None = Field(description="The request's nonce, hexadecimal.")
    cert_req: bool
    requester: str = Field(description="The principal, or the client address of an anonymous request.")
    tsa_certificate_sha256: str


def timestamp_out(stored: StoredTimestamp) -> TimestampOut:
    return TimestampOut(
        serial=stored.serial_hex,
        gen_time=isoformat_utc(stored.gen_time),
        hash_algorithm=stored.hash_algorithm,
        message_imprint=stored.message_imprint,
        policy=stored.policy,
        nonce=format(stored.nonce, "x") if stored.nonce is not None else None,
        cert_req=stored.cert_req,
        requester=stored.requester,
        tsa_certificate_sha256=stored.tsa_certificate,
    )


def _serial(text: str) -> int:
    try:
        value = int(text.strip().replace(":", "").lower().removeprefix("0x"), 16)
    except ValueError:
        raise InvalidInput("the serial number must be hexadecimal", detail_zh="序列号必须为十六进制") from None
    if value <= 0:
        raise InvalidInput("the serial number must be positive", detail_zh="序列号必须为正数")
    return value


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@router.get(
    "/api/v1/timestamps",
    dependencies=[require(Permission.TIMESTAMPS_READ)],
    response_model=Page[TimestampOut],
    summary="List issued timestamps",
)
def list_timestamps(
    request: Request,
    page: PageParams = Depends(),
    since: dt.datetime | None = Query(None, description="genTime from (RFC 3339, inclusive)."),
    until: dt.datetime | None = Query(None, description="genTime before (RFC 3339, exclusive)."),
    requester: str | None = Query(None, max_length=200, description="Principal or client address."),
    hash_algorithm: str | None = Query(None, max_length=20, description="e.g. sha256."),
    policy: str | None = Query(None, max_length=200, description="Policy OID."),
    message_imprint: str | None = Query(
        None, max_length=128, pattern="^[0-9a-fA-F]+$", description="The hashed data, hexadecimal."
    ),
) -> Page[TimestampOut]:
    after = page.after()
    if after is not None and not isinstance(after, int):
        raise InvalidInput("the cursor is not valid; use next_cursor from a previous page", detail_zh="分页游标无效")
    query = TimestampQuery(
        since=_aware(since),
        until=_aware(until),
        requester=requester,
        hash_algorithm=hash_algorithm,
        policy=policy,
        message_imprint=message_imprint,
        after_id=after or 0,
        limit=page.limit,
    )
    found = page_of(service_of(request).search(query), page.limit, lambda stored: stored.id)
    return Page[TimestampOut](items=[timestamp_out(s) for s in found.items], next_cursor=found.next_cursor)


# -- verification ----------------------------------------------------------------------------------------


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=200_000, description="The token or the whole TimeStampResp: base64 of the DER.")
    data: str | None = Field(None, max_length=3_000_000, description="The stamped data, base64.")
    digest: str | None = Field(
        None,
        max_length=128,
        pattern="^[0-9a-fA-F]+$",
        description="Or its digest (the token's hash algorithm), hexadecimal.",
    )


class CertificateRefOut(BaseModel):
    subject: str
    serial: str
    fingerprint_sha256: str
    not_before: str
    not_after: str


class TokenOut(BaseModel):
    serial: str
    gen_time: str
    policy: str
    hash_algorithm: str
    message_imprint: str
    nonce: str | None
    accuracy_seconds: float | None
    ordering: bool


class VerifyOut(BaseModel):
    valid: bool
    code: str | None = Field(None, description="Why the token is not valid (a stable error code).")
    reason: str | None = None
    timestamp: TokenOut | None = None
    tsa_certificate: CertificateRefOut | None = None
    certification_path: list[CertificateRefOut] = Field(default_factory=list)
    record: TimestampOut | None = Field(None, description="This TSA's record of the token, if it issued it.")


def _certificate_ref(certificate: Any) -> CertificateRefOut:
    from cryptography.hazmat.primitives import hashes

    return CertificateRefOut(
        subject=certificate.subject.rfc4514_string(),
        serial=format(certificate.serial_number, "x"),
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        not_before=isoformat_utc(certificate.not_valid_before_utc),
        not_after=isoformat_utc(certificate.not_valid_after_utc),
    )


def _verified_out(verified: VerifiedTimestamp, stored: StoredTimestamp | None) -> VerifyOut:
    return VerifyOut(
        valid=True,
        code=None,
        timestamp=TokenOut(
            serial=format(verified.serial_number, "x"),
            gen_time=isoformat_utc(verified.gen_time),
            policy=verified.policy,
            hash_algorithm=verified.hash_algorithm,
            message_imprint=verified.message_imprint.hex(),
            nonce=format(verified.nonce, "x") if verified.nonce is not None else None,
            accuracy_seconds=verified.accuracy.total_seconds() if verified.accuracy is not None else None,
            ordering=verified.ordering,
        ),
        tsa_certificate=_certificate_ref(verified.tsa_certificate),
        certification_path=[_certificate_ref(c) for c in verified.certification_path],
        record=timestamp_out(stored) if stored is not None else None,
    )


def _base64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            f"{field} is not valid base64", detail_zh=f"{field} 不是有效的 base64", field=field
        ) from None


def _digest(value: str) -> bytes:
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        raise InvalidInput("digest is not hexadecimal", detail_zh="digest 不是十六进制", field="digest") from None


async def _verify_input(request: Request) -> tuple[bytes, bytes | None, bytes | None]:
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        form = await request.form(max_files=2, max_fields=3)
        unknown = set(form.keys()) - {"token", "data", "digest"}
        if unknown:
            raise InvalidInput(f"unknown form fields: {', '.join(sorted(unknown))}", detail_zh="表单包含未知字段")
        values: dict[str, bytes | None] = {}
        for name in ("token", "data", "digest"):
            value = form.get(name)
            if value is None:
                values[name] = None
            elif isinstance(value, str):
                values[name] = value.encode()
            else:
                values[name] = await value.read()
        token_value = values["token"]
        if not token_value:
            raise InvalidInput("the token field is required", detail_zh="缺少 token 字段", field="token")
        # A file part carries DER; a text part carries base64.
        token = token_value if not isinstance(form.get("token"), str) else _base64(token_value.decode(), "token")
        digest = _digest(values["digest"].decode("ascii", "replace")) if values["digest"] else None
        return token, values["data"], digest
    if media_type != "application/json":
        raise UnsupportedMediaType(
            "send application/json or multipart/form-data",
            detail_zh="请使用 application/json 或 multipart/form-data",
            accepted=["application/json", "multipart/form-data"],
        )
    try:
        body = VerifyIn.model_validate_json(await request.body())
    except ValidationError as e:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error.get("loc", ()))} for error in e.errors()]
        ) from None
    token = _base64(body.token, "token")
    data = _base64(body.data, "data") if body.data is not None else None
    digest = _digest(body.digest) if body.digest is not None else None
    return token, data, digest


@router.post(
    "/api/v1/timestamps/verify",
    dependencies=[require(Permission.TIMESTAMPS_READ)],
    response_model=VerifyOut,
    summary="Verify a timestamp token against data or its digest",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": VerifyIn.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["token"],
                        "properties": {
                            "token": {
                                "type": "string",
                                "format": "binary",
                                "description": "DER token or TimeStampResp",
                            },
                            "data": {"type": "string", "format": "binary"},
                            "digest": {"type": "string", "description": "hexadecimal"},
                        },
                    }
                },
            },
        }
    },
)
async def verify_timestamp(request: Request) -> VerifyOut:
    """Answers ``valid: true`` with what the token says, or ``valid: false`` with the reason's code.

    Exactly one of ``data`` and ``digest`` is required (400 ``timestamp.request_invalid`` otherwise).
    The token must chain to one of Hengxin's root CAs; revocation is not checked here.
    """
    from api.errors import request_language

    token, data, digest = await _verify_input(request)
    service = service_of(request)
    try:
        verified, stored = await asyncio.to_thread(service.verify, token, data=data, digest=digest)
    except TimestampRequestInvalid:
        raise
    except TimestampError as e:
        return VerifyOut(valid=False, code=e.code, reason=e.localized_detail(request_language(request)), record=None)
    return _verified_out(verified, stored)


@router.get(
    "/api/v1/timestamps/{serial}",
    dependencies=[require(Permission.TIMESTAMPS_READ)],
    response_model=TimestampOut,
    summary="Fetch the record of a timestamp by serial number",
)
def get_timestamp(request: Request, serial: str) -> TimestampOut:
    return timestamp_out(service_of(request).get(_serial(serial)))

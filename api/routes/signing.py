"""Document signing over HTTP: ``/api/v1/signatures/...`` and ``POST /api/v1/timestamps/pdf``.

Documents come as ``multipart/form-data`` (the body limit is ``[server]
upload_max_body_bytes`` on these paths, the document limit ``[signing]
max_upload_bytes``).  Signed outputs are returned as they are
(``application/pdf``, ``application/pkcs7-signature``) only after the
signature's record and audit record are committed.

Who signs:

- without ``seal``: the caller's own custodial ``person-sign`` key.  The
  Electronic Signature Law requires that the signatory alone controls the
  signing, so only a person who logged in with a second factor or a
  certificate within ``[signing] step_up_max_age_seconds`` may do it (401
  ``auth.step_up_required`` otherwise; API tokens and service accounts get 403);
  ``amr`` and ``auth_time`` of that login go into the audit record;
- with ``seal``: the organisation seal of that name in ``[[signing.seals]]``,
  if its rule names the caller's login, one of its roles, or its API token
  (403 ``signing.seal_not_allowed`` otherwise, also for unknown seal names).

The routes are plain ``def`` functions: signing runs its own event loop and
blocks, so FastAPI runs them in its worker threads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api.auth import (
    Permission,
    Principal,
    RecentStrongAuthCheck,
    client_address,
    current_principal,
    platform_of,
    require,
)
from api.components.signing import Caller, SignerChoice, SigningPlatform, report_json, service_of
from api.pagination import Page, PageParams, page_of
from core.clock import isoformat_utc
from core.errors import InvalidInput
from signing import VisibleSignature
from signing.errors import SigningRequestInvalid
from signing.service import SignatureQuery, SignatureRecord

router = APIRouter(tags=["signing"])

PDF = "application/pdf"
PKCS7_SIGNATURE = "application/pkcs7-signature"
MAX_IMAGE_BYTES = 2 * 1024 * 1024


def _signing(request: Request) -> SigningPlatform:
    return service_of(platform_of(request))


def _caller(principal: Principal) -> Caller:
    return Caller(principal.kind, principal.name, tuple(role for role, _department in principal.assignments))


def _read(upload: UploadFile | None, limit: int, field: str) -> bytes:
    """The uploaded part, refusing more than ``limit`` bytes (the signing functions check their own limits too)."""
    if upload is None:
        raise InvalidInput(f"the {field} field is required", detail_zh=f"缺少 {field} 字段", field=field)
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        from signing.errors import ContentTooLarge

        raise ContentTooLarge(
            f"{field} is larger than {limit} bytes", detail_zh=f"{field} 超过 {limit} 字节", limit=limit
        )
    return data


def _choose_signer(request: Request, service: SigningPlatform, seal: str | None) -> tuple[SignerChoice, Caller, dict]:
    """The signer for this request, after the step-up check (personal) or the seal's rule; audit details."""
    principal = current_principal(request)
    source = client_address(request)
    if seal:
        caller = _caller(principal)
        return service.seal_signer(seal, caller, source=source), caller, {"path": "api", "source": source}
    max_age = service.settings.step_up_max_age_seconds
    person = RecentStrongAuthCheck(max_age)(request)
    details: dict[str, Any] = {
        "path": "api",
        "amr": list(person.amr),
        "auth_time": isoformat_utc(person.auth_time) if person.auth_time else None,
        "session_id": person.session_id,
    }
    return service.personal_signer(person.name), _caller(person), details


def _rect(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise SigningRequestInvalid(
            "rect must be four numbers x1,y1,x2,y2 (points from the lower-left corner)",
            detail_zh="rect 须为四个数 x1,y1,x2,y2（单位为点，自页面左下角）",
            field="rect",
        )
    return values  # type: ignore[return-value]


def _visible(
    page: int | None, rect: str | None, text: str | None, image: UploadFile | None
) -> VisibleSignature | None:
    if rect is None:
        if page is not None or text is not None or image is not None:
            raise SigningRequestInvalid(
                "a visible signature needs rect", detail_zh="可见签名需要 rect 参数", field="rect"
            )
        return None
    image_png = _read(image, MAX_IMAGE_BYTES, "image") if image is not None else None
    return VisibleSignature(page=page or 1, rect=_rect(rect), text=text, image_png=image_png)


def _attachment(name: str | None, suffix: str) -> str:
    base = (name or "document").rsplit("/", 1)[-1]
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in base) or "document"
    return f'attachment; filename="{ascii_name}{suffix}"'


# -- signing -------------------------------------------------------------------------------------------


@router.post(
    "/api/v1/signatures/pdf",
    dependencies=[require(Permission.SIGNATURES_CREATE)],
    response_class=Response,
    responses={200: {"content": {PDF: {}}, "description": "The signed PDF (the input plus one incremental update)."}},
    summary="Sign a PDF (PAdES B-B/B-T/B-LT/B-LTA) with your personal key or an organisation seal",
)
def sign_pdf(
    request: Request,
    file: UploadFile = File(..., description="The PDF to sign."),
    level: str | None = Form(None, description="B-B, B-T, B-LT or B-LTA (default [signing] default_level)."),
    seal: str | None = Form(None, max_length=64, description="Seal name; omit to sign with your personal key."),
    page: int | None = Form(None, ge=1, description="Visible signature: page, from 1."),
    rect: str | None = Form(None, max_length=100, description="Visible signature: x1,y1,x2,y2 in points."),
    text: str | None = Form(None, max_length=500, description="Visible signature text ({signer}, {time} ...)."),
    image: UploadFile | None = File(None, description="Visible signature: a PNG seal image."),
    reason: str | None = Form(None, max_length=500),
    location: str | None = Form(None, max_length=500),
    contact: str | None = Form(None, max_length=500),
    field_name: str | None = Form(None, max_length=100, description="Signature field (default Signature<n>)."),
) -> Response:
    service = _signing(request)
    choice, caller, details = _choose_signer(request, service, seal)
    visible = _visible(page, rect, text, image)
    document = _read(file, service.settings.max_upload_bytes, "file")
    signed, record = service.sign_pdf(
        document, choice, caller, level=level, visible=visible, reason=reason, location=location, contact=contact,
        field_name=field_name, source=client_address(request), details=details,
    )
    return Response(
        signed,
        media_type=PDF,
        headers={"Content-Disposition": _attachment(file.filename, ".signed.pdf"), "X-Signature-Record": str(record.id),
                 "Cache-Control": "no-store"},
    )


@router.post(
    "/api/v1/signatures/cms",
    dependencies=[require(Permission.SIGNATURES_CREATE)],
    response_class=Response,
    responses={200: {"content": {PKCS7_SIGNATURE: {}}, "description": "The detached CMS signature (DER .p7s)."}},
    summary="Sign any file with a detached CMS/CAdES signature (B-B or B-T)",
)
def sign_cms(
    request: Request,
    file: UploadFile = File(..., description="The content to sign."),
    level: str = Form("B-T", description="B-B or B-T."),
    seal: str | None = Form(None, max_length=64, description="Seal name; omit to sign with your personal key."),
) -> Response:
    service = _signing(request)
    choice, caller, details = _choose_signer(request, service, seal)
    content = _read(file, service.settings.max_upload_bytes, "file")
    p7s, record = service.sign_cms(
        content, choice, caller, level=level, source=client_address(request), details=details
    )
    return Response(
        p7s,
        media_type=PKCS7_SIGNATURE,
        headers={"Content-Disposition": _attachment(file.filename, ".p7s"), "X-Signature-Record": str(record.id),
                 "Cache-Control": "no-store"},
    )


@router.post(
    "/api/v1/timestamps/pdf",
    dependencies=[require(Permission.TIMESTAMPS_ISSUE)],
    response_class=Response,
    responses={200: {"content": {PDF: {}}, "description": "The PDF with a document timestamp and the TSA's "
                     "validation data."}},
    summary="Add a document timestamp (/DocTimeStamp) to a PDF",
)
def timestamp_pdf(request: Request, file: UploadFile = File(..., description="The PDF to timestamp.")) -> Response:
    service = _signing(request)
    caller = _caller(current_principal(request))
    document = _read(file, service.settings.max_upload_bytes, "file")
    source = client_address(request)
    stamped, record = service.timestamp_pdf(document, caller, source=source, details={"path": "api"})
    return Response(
        stamped,
        media_type=PDF,
        headers={"Content-Disposition": _attachment(file.filename, ".timestamped.pdf"),
                 "X-Signature-Record": str(record.id), "Cache-Control": "no-store"},
    )


# -- verification --------------------------------------------------------------------------------------


@router.post(
    "/api/v1/signatures/verify",
    dependencies=[require(Permission.SIGNATURES_VERIFY)],
    summary="Verify the signatures of a PDF, or a detached CMS signature with its content",
)
def verify_signatures(
    request: Request,
    file: UploadFile = File(..., description="A signed PDF, or a DER CMS signature (.p7s) with content."),
    content: UploadFile | None = File(None, description="The signed content, for a detached CMS signature."),
    etsi: bool = Query(False, description="Add the ETSI TS 119 102-2 XML report of each PDF signature."),
) -> JSONResponse:
    service = _signing(request)
    limit = service.settings.max_upload_bytes
    if content is not None:
        signature = _read(file, limit, "file")
        report = service.verify_cms(signature, _read(content, limit, "content"))
    else:
        report = service.verify_pdf(_read(file, limit, "file"), etsi_report=etsi)
    return JSONResponse(report_json(report))


# -- records -------------------------------------------------------------------------------------------


class SignatureOut(BaseModel):
    id: int
    kind: str = Field(description="pdf, cms or doc-timestamp.")
    document_sha256: str
    output_sha256: str
    output_size: int
    signer_serial: str = Field(description="Serial number of the signer certificate, hexadecimal.")
    signer_fingerprint: str = Field(description="SHA-256 of the signer certificate.")
    signer_subject: str
    key_id: str
    seal: str | None
    signatory: str | None = Field(description="The person whose personal key signed.")
    level: str
    created_at: str
    requester: str
    output_kept: bool


def signature_out(record: SignatureRecord) -> SignatureOut:
    return SignatureOut(
        id=record.id,
        kind=record.kind,
        document_sha256=record.document_sha256,
        output_sha256=record.output_sha256,
        output_size=record.output_size,
        signer_serial=record.signer_serial,
        signer_fingerprint=record.signer_fingerprint,
        signer_subject=record.signer_subject,
        key_id=record.key_id,
        seal=record.seal,
        signatory=record.signatory,
        level=record.level,
        created_at=isoformat_utc(record.created_at),
        requester=record.requester,
        output_kept=record.output_kept,
    )


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@router.get(
    "/api/v1/signatures",
    dependencies=[require(Permission.SIGNATURES_VERIFY)],
    response_model=Page[SignatureOut],
    summary="List the signatures made by this platform",
)
def list_signatures(
    request: Request,
    page: PageParams = Depends(),
    kind: str | None = Query(None, pattern="^(pdf|cms|doc-timestamp)$"),
    seal: str | None = Query(None, max_length=64),
    signatory: str | None = Query(None, max_length=200),
    requester: str | None = Query(None, max_length=200),
    document_sha256: str | None = Query(None, pattern="^[0-9a-fA-F]{64}$"),
    output_sha256: str | None = Query(None, pattern="^[0-9a-fA-F]{64}$"),
    since: dt.datetime | None = Query(None, description="Made from (RFC 3339, inclusive)."),
    until: dt.datetime | None = Query(None, description="Made before (RFC 3339, exclusive)."),
) -> Page[SignatureOut]:
    after = page.after()
    if after is not None and not isinstance(after, int):
        raise InvalidInput("the cursor is not valid; use next_cursor from a previous page", detail_zh="分页游标无效")
    query = SignatureQuery(
        kind=kind, seal=seal, signatory=signatory, requester=requester, document_sha256=document_sha256,
        output_sha256=output_sha256, since=_aware(since), until=_aware(until), after_id=after or 0, limit=page.limit,
    )
    found = page_of(_signing(request).records.search(query), page.limit, lambda record: record.id)
    return Page[SignatureOut](items=[signature_out(r) for r in found.items], next_cursor=found.next_cursor)

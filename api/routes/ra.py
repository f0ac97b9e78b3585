"""Certificate requests over HTTP: ``/api/v1/certificate-requests`` (see docs/ca.md, Registration authority).

Anyone logged in may ask for a certificate for themself, and see and cancel
their own requests; asking on someone else's behalf needs
``certificate_requests.submit``; approving and rejecting
``certificate_requests.approve``, and seeing everybody's requests either of them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastAPIPath
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Permission, PermissionCheck, Principal, authenticate, platform_of, require
from api.errors import Forbidden, Unauthenticated
from api.pagination import Page, PageParams, page_of
from api.routes.ca import SANsIn, SubjectIn, pem_or_base64
from ca.ra import CertificateRequest, NotAllowed, RegistrationAuthority, RequestQuery, Submission
from core.clock import isoformat_utc
from core.errors import ConfigurationError, InvalidInput

# Database row ids are 64-bit: a larger number is a 400 from validation, not an overflow in the database.
RequestId = Annotated[int, FastAPIPath(ge=1, le=2**63 - 1, description="The request's id.")]

router = APIRouter(tags=["certificate requests"])

_SEE_ALL = (Permission.CERTIFICATE_REQUESTS_SUBMIT, Permission.CERTIFICATE_REQUESTS_APPROVE)


class SelfServiceCheck(PermissionCheck):
    """Admits a person acting for themself (``account.self``) or a holder of one of ``others``.

    The route audit sees ``account.self``; handlers narrow what such a caller may do.
    """

    def __init__(self, *others: Permission) -> None:
        super().__init__(Permission.ACCOUNT_SELF)
        self.others = others

    def __call__(self, request: Request) -> Principal:
        principal = authenticate(request)
        if principal is None:
            raise Unauthenticated("this resource needs credentials", detail_zh="此资源需要身份认证")
        if principal.has(Permission.ACCOUNT_SELF) or any(principal.has(p) for p in self.others):
            return principal
        wanted = self.others[0].value if self.others else Permission.ACCOUNT_SELF.value
        raise Forbidden(f"permission {wanted!r} is required", detail_zh=f"需要权限 {wanted!r}", permission=wanted)


def service_of(request: Request) -> RegistrationAuthority:
    service = platform_of(request).services.get("ra")
    if not isinstance(service, RegistrationAuthority):
        raise ConfigurationError("the registration authority is not available: run `hengxin init`")
    return service


def _sees_all(principal: Principal) -> bool:
    return any(principal.has(p) for p in _SEE_ALL)


def _involves(principal: Principal, item: CertificateRequest) -> bool:
    return item.requested_by == principal.actor or (principal.kind == "user" and item.subject_login == principal.name)


# -- models ---------------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitIn(Strict):
    profile: str = Field(max_length=100)
    subject: str | None = Field(None, max_length=110, description="Whom it is for: 'user:<login>' (default: you).")
    reason: str = Field(min_length=1, max_length=2000, description="Why the certificate is needed (audited).")
    csr: str | None = Field(None, max_length=200_000, description="PKCS #10 request: PEM, or base64 of the DER.")
    key_mode: Literal["csr", "custodial"] | None = Field(
        None, description="csr (default when a CSR is given) or custodial (the key is kept in the key store)."
    )
    subject_attributes: SubjectIn | None = Field(
        None, description="Non-person profiles only: subject attributes (default: the CSR's). Person profiles take "
        "the directory's.",
    )
    sans: SANsIn | None = Field(None, description="Non-person profiles only: subjectAltNames.")
    ca: str | None = Field(None, max_length=100)
    validity_days: int | None = Field(None, ge=1, le=36500)


class ReasonIn(Strict):
    reason: str = Field("", max_length=2000)


class ApprovalOut(BaseModel):
    approver: str
    approved_at: str


class RequestOut(BaseModel):
    id: int
    status: str
    profile: str
    subject: str
    subject_attributes: dict[str, list[str]]
    sans: dict[str, list[str]]
    key_mode: str
    reason: str
    approval_rule: str
    approvals_required: int
    approvals: list[ApprovalOut]
    requested_by: str
    created_at: str
    decided_by: str | None
    decided_at: str | None
    decision_reason: str | None
    certificate_id: int | None
    issued_at: str | None


def _out(item: CertificateRequest) -> RequestOut:
    def time(moment: dt.datetime | None) -> str | None:
        return isoformat_utc(moment) if moment is not None else None

    return RequestOut(
        id=item.id, status=item.status, profile=item.profile, subject=item.owner,
        subject_attributes={k: list(v) for k, v in item.subject.items()},
        sans={k: list(v) for k, v in item.sans.items() if v}, key_mode=item.key_mode, reason=item.reason,
        approval_rule=item.rule, approvals_required=item.approvals_required,
        approvals=[ApprovalOut(approver=a.approver, approved_at=isoformat_utc(a.approved_at)) for a in item.approvals],
        requested_by=item.requested_by, created_at=isoformat_utc(item.created_at), decided_by=item.decided_by,
        decided_at=time(item.decided_at), decision_reason=item.decision_reason, certificate_id=item.certificate_id,
        issued_at=time(item.issued_at),
    )


def _subject_login(value: str | None, principal: Principal) -> str:
    if value is None:
        if principal.kind != "user":
            raise InvalidInput("say whom the certificate is for: subject 'user:<login>'",
                               detail_zh="请指定证书持有人：subject 为 'user:<login>'", field="subject")
        return principal.name
    kind, _, login = value.partition(":")
    if kind != "user" or not login.strip():
        raise InvalidInput("subject must be 'user:<login>'", detail_zh="subject 必须为 'user:<login>'", field="subject")
    return login.strip().lower()


# -- routes ---------------------------------------------------------------------------------------


@router.post("/api/v1/certificate-requests", status_code=201, response_model=RequestOut,
             dependencies=[Depends(SelfServiceCheck(Permission.CERTIFICATE_REQUESTS_SUBMIT))],
             summary="Request a certificate (for yourself, or for a user on their behalf)")
def submit_request(body: SubmitIn, request: Request) -> RequestOut:
    principal = authenticate(request)
    assert principal is not None
    login = _subject_login(body.subject, principal)
    on_behalf = not (principal.kind == "user" and login == principal.name)
    if on_behalf and not principal.has(Permission.CERTIFICATE_REQUESTS_SUBMIT):
        raise Forbidden("requesting a certificate for someone else needs 'certificate_requests.submit'",
                        detail_zh="为他人申请证书需要权限 'certificate_requests.submit'",
                        permission=Permission.CERTIFICATE_REQUESTS_SUBMIT.value)
    key_mode = body.key_mode or ("csr" if body.csr is not None else "custodial")
    submission = Submission(
        profile=body.profile, subject_login=login, reason=body.reason, key_mode=key_mode,
        csr=pem_or_base64(body.csr) if body.csr is not None else None,
        subject=body.subject_attributes, sans=body.sans.value() if body.sans is not None else None,
        ca=body.ca, validity_days=body.validity_days,
    )
    return _out(service_of(request).submit(submission, actor=principal.actor))


@router.get("/api/v1/certificate-requests", response_model=Page[RequestOut],
            dependencies=[Depends(SelfServiceCheck(*_SEE_ALL))], summary="List certificate requests")
def list_requests(
    request: Request,
    page: PageParams = Depends(),
    status: str | None = Query(None, max_length=20, description="pending, approved, issued, rejected, cancelled"),
    profile: str | None = Query(None, max_length=100),
    subject: str | None = Query(None, max_length=110, description="'user:<login>' or a login"),
) -> Page[RequestOut]:
    principal = authenticate(request)
    assert principal is not None
    after = page.after()
    if after is not None and not isinstance(after, int):
        raise InvalidInput("the cursor is not valid", detail_zh="分页游标无效")
    query = RequestQuery(
        status=status, profile=profile, subject_login=subject.removeprefix("user:") if subject else None,
        involving=None if _sees_all(principal) else principal.actor, after_id=after or 0, limit=page.limit,
    )
    items = [_out(item) for item in service_of(request).search(query)]
    return page_of(items, page.limit, lambda item: item.id)


def _visible(request: Request, request_id: int) -> tuple[RegistrationAuthority, Principal, CertificateRequest]:
    principal = authenticate(request)
    assert principal is not None
    service = service_of(request)
    item = service.get(request_id)
    if not _sees_all(principal) and not _involves(principal, item):
        raise NotAllowed("this request is someone else's", detail_zh="这是他人的证书申请")
    return service, principal, item


@router.get("/api/v1/certificate-requests/{request_id}", response_model=RequestOut,
            dependencies=[Depends(SelfServiceCheck(*_SEE_ALL))], summary="A certificate request")
def get_request(request_id: RequestId, request: Request) -> RequestOut:
    return _out(_visible(request, request_id)[2])


@router.post("/api/v1/certificate-requests/{request_id}/approve", response_model=RequestOut,
             dependencies=[require(Permission.CERTIFICATE_REQUESTS_APPROVE)], summary="Approve a request")
def approve_request(request_id: RequestId, request: Request) -> RequestOut:
    principal = authenticate(request)
    assert principal is not None
    return _out(service_of(request).approve(request_id, actor=principal.actor))


@router.post("/api/v1/certificate-requests/{request_id}/reject", response_model=RequestOut,
             dependencies=[require(Permission.CERTIFICATE_REQUESTS_APPROVE)], summary="Reject a request")
def reject_request(request_id: RequestId, body: ReasonIn, request: Request) -> RequestOut:
    principal = authenticate(request)
    assert principal is not None
    return _out(service_of(request).reject(request_id, actor=principal.actor, reason=body.reason))


@router.post("/api/v1/certificate-requests/{request_id}/cancel", response_model=RequestOut,
             dependencies=[Depends(SelfServiceCheck(*_SEE_ALL))], summary="Withdraw a pending request")
def cancel_request(request_id: RequestId, request: Request, body: ReasonIn | None = None) -> RequestOut:
    service, principal, _ = _visible(request, request_id)
    return _out(service.cancel(request_id, actor=principal.actor, reason=body.reason if body else ""))

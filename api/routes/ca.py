"""Certificate authorities and certificates over HTTP: ``/api/v1/cas`` and ``/api/v1/certificates``.

Certificates are named by id (up to 15 decimal digits) or by serial number
(hexadecimal); ``id:`` and ``serial:`` prefixes make it explicit.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from api.auth import Permission, current_principal, platform_of, require
from api.pagination import Page, PageParams, page_of
from ca.certificates import NameConstraints
from ca.crl_publisher import PublishedCRL
from ca.profiles import SubjectAltNames
from ca.service import CAService, CertificateQuery, IssueRequest, IssueResult, ValidationReport
from ca.service_errors import InvalidIssueRequest
from ca.store import CAInfo, CertificateInfo, parse_reference
from core.clock import isoformat_utc
from core.errors import ConfigurationError, InvalidInput

router = APIRouter(tags=["ca"])


def service_of(request: Request) -> CAService:
    service = platform_of(request).services.get("ca")
    if not isinstance(service, CAService):
        raise ConfigurationError("the certificate authority is not initialised: run `hengxin init`")
    return service


def _time(moment: dt.datetime | None) -> str | None:
    return isoformat_utc(moment) if moment is not None else None


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# -- models -------------------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SANsIn(Strict):
    dns: list[str] = Field(default_factory=list, max_length=100)
    ip: list[str] = Field(default_factory=list, max_length=100)
    email: list[str] = Field(default_factory=list, max_length=100)
    uri: list[str] = Field(default_factory=list, max_length=100)

    def value(self) -> SubjectAltNames:
        # SubjectAltNames parses IP address strings (and refuses bad ones with rule san_invalid).
        addresses: Any = tuple(self.ip)
        return SubjectAltNames(dns=tuple(self.dns), ip=addresses, email=tuple(self.email), uri=tuple(self.uri))


class KeyIn(Strict):
    mode: Literal["server", "custodial"] = Field(
        description="server: generated here, returned once as PKCS #12; custodial: kept in the key store for owner."
    )
    pkcs12_password: SecretStr | None = Field(None, description="server mode: protects the PKCS #12 file.")
    owner: str | None = Field(None, max_length=200, description="custodial mode: e.g. 'user:zhangwei'.")
    algorithm: str | None = Field(None, max_length=20, description="ec-p256, ec-p384, rsa-2048 ... (profile default).")


SubjectIn = dict[str, str | list[str]]


class IssueIn(Strict):
    profile: str = Field(max_length=100)
    ca: str | None = Field(None, max_length=100, description="Issuing CA (default: [ca] issuing_name).")
    csr: str | None = Field(None, max_length=200_000, description="PKCS #10 request: PEM, or base64 of the DER.")
    key: KeyIn | None = None
    subject: SubjectIn | None = Field(None, description="Subject attributes; default: the CSR's subject.")
    sans: SANsIn | None = Field(None, description="subjectAltNames; default: the CSR's.")
    validity_days: int | None = Field(None, ge=1, le=36500)


class RenewIn(Strict):
    validity_days: int | None = Field(None, ge=1, le=36500)


class RekeyIn(Strict):
    csr: str | None = Field(None, max_length=200_000)
    pkcs12_password: SecretStr | None = None
    algorithm: str | None = Field(None, max_length=20)
    validity_days: int | None = Field(None, ge=1, le=36500)


class RevokeIn(Strict):
    reason: str = Field("unspecified", max_length=40, description="RFC 5280 reason, e.g. keyCompromise.")
    invalidity_date: dt.datetime | None = Field(
        None, description="When the key is known or suspected to be compromised."
    )


class CreateCAIn(Strict):
    name: str = Field(max_length=63)
    parent: str | None = Field(None, max_length=100, description="Parent CA (default: [ca] root_name).")
    common_name: str | None = Field(None, max_length=64)
    algorithm: str | None = Field(None, max_length=20)
    path_length: int | None = Field(None, ge=0, le=10)
    validity_days: int | None = Field(None, ge=1, le=36500)
    permitted_dns: list[str] = Field(default_factory=list, max_length=100)
    excluded_dns: list[str] = Field(default_factory=list, max_length=100)
    permitted_email: list[str] = Field(default_factory=list, max_length=100)
    excluded_email: list[str] = Field(default_factory=list, max_length=100)
    permitted_ip: list[str] = Field(default_factory=list, max_length=100)
    excluded_ip: list[str] = Field(default_factory=list, max_length=100)

    def constraints(self) -> NameConstraints | None:
        values = (self.permitted_dns, self.excluded_dns, self.permitted_email, self.excluded_email,
                  self.permitted_ip, self.excluded_ip)
        if not any(values):
            return None
        # NameConstraints parses the IP network strings (and refuses bad ones with rule name_constraints).
        permitted_ip: Any = tuple(self.permitted_ip)
        excluded_ip: Any = tuple(self.excluded_ip)
        return NameConstraints(
            permitted_dns=tuple(self.permitted_dns), excluded_dns=tuple(self.excluded_dns),
            permitted_email=tuple(self.permitted_email), excluded_email=tuple(self.excluded_email),
            permitted_ip=permitted_ip, excluded_ip=excluded_ip,
        )


class ValidateIn(Strict):
    certificate: str = Field(max_length=200_000, description="PEM, or base64 of the DER.")
    chain: list[str] = Field(default_factory=list, max_length=20, description="Intermediate certificates (PEM).")
    purpose: str = Field("any", max_length=40)
    validation_time: dt.datetime | None = None


class CertificateOut(BaseModel):
    id: int
    ca: str
    serial: str
    status: str
    profile: str
    subject: str
    key_mode: str
    owner: str | None
    key_id: str | None
    not_before: str
    not_after: str
    fingerprint_sha256: str | None
    requested_by: str
    created_at: str
    revoked_at: str | None
    revocation_reason: str | None
    invalidity_date: str | None
    renewal_of: int | None
    certificate_pem: str | None


class IssueOut(BaseModel):
    certificate: CertificateOut
    chain_pem: str
    pkcs12_base64: str | None = Field(None, description="server mode only: the key and certificate, shown once.")


class ResponderOut(BaseModel):
    serial: str
    not_after: str


class CAOut(BaseModel):
    name: str
    parent: str | None
    status: str
    subject: str
    serial: str
    not_before: str
    not_after: str
    fingerprint_sha256: str
    path_length: int | None
    crl_number: int
    ocsp_responder: ResponderOut | None
    certificate_url: str
    crl_url: str
    ocsp_url: str
    certificate_pem: str


class CRLOut(BaseModel):
    ca: str
    crl_number: int
    this_update: str
    next_update: str
    entries: int


class PathEntryOut(BaseModel):
    subject: str
    serial: str
    fingerprint_sha256: str
    not_before: str
    not_after: str
    ca: str | None
    certificate_id: int | None


class PurposeOut(BaseModel):
    purpose: str
    satisfied: bool
    key_usage_any_of: list[str]
    extended_key_usage: str | None
    reason: str | None


class RevocationOut(BaseModel):
    status: str
    source: str | None
    revoked_at: str | None
    reason: str | None


class ValidityOut(BaseModel):
    not_before: str
    not_after: str
    valid_at_time: bool


class ValidationOut(BaseModel):
    valid: bool
    code: str
    reason: str | None
    validation_time: str
    trust_root: PathEntryOut | None
    path: list[PathEntryOut]
    validity: ValidityOut
    key_usage: PurposeOut
    revocation: RevocationOut


# -- conversions --------------------------------------------------------------------------------------


def certificate_out(info: CertificateInfo) -> CertificateOut:
    pem = info.pem
    return CertificateOut(
        id=info.id,
        ca=info.ca,
        serial=info.serial_hex,
        status=info.status,
        profile=info.profile,
        subject=info.subject,
        key_mode=info.key_mode,
        owner=info.owner,
        key_id=info.key_id,
        not_before=isoformat_utc(info.not_before),
        not_after=isoformat_utc(info.not_after),
        fingerprint_sha256=info.fingerprint_sha256,
        requested_by=info.requested_by,
        created_at=isoformat_utc(info.created_at),
        revoked_at=_time(info.revoked_at),
        revocation_reason=info.revocation_reason,
        invalidity_date=_time(info.invalidity_date),
        renewal_of=info.renewal_of,
        certificate_pem=pem.decode("ascii") if pem else None,
    )


def issue_out(result: IssueResult) -> IssueOut:
    return IssueOut(
        certificate=certificate_out(result.certificate),
        chain_pem=result.chain_pem.decode("ascii"),
        pkcs12_base64=base64.b64encode(result.pkcs12).decode("ascii") if result.pkcs12 else None,
    )


def ca_out(info: CAInfo, base_url: str) -> CAOut:
    responder = info.ocsp_certificate
    base = base_url.rstrip("/")
    return CAOut(
        name=info.name,
        parent=info.parent,
        status=info.status,
        subject=info.subject,
        serial=format(info.serial, "x"),
        not_before=isoformat_utc(info.not_before),
        not_after=isoformat_utc(info.not_after),
        fingerprint_sha256=info.fingerprint_sha256,
        path_length=info.path_length,
        crl_number=info.crl_number,
        ocsp_responder=ResponderOut(serial=format(responder.serial_number, "x"),
                                    not_after=isoformat_utc(responder.not_valid_after_utc)) if responder else None,
        certificate_url=f"{base}/ca/{info.name}.crt",
        crl_url=f"{base}/crl/{info.name}.crl",
        ocsp_url=f"{base}/ocsp",
        certificate_pem=info.certificate_pem.decode("ascii"),
    )


def crl_out(name: str, crl: PublishedCRL) -> CRLOut:
    return CRLOut(ca=name, crl_number=crl.crl_number, this_update=isoformat_utc(crl.this_update),
                  next_update=isoformat_utc(crl.next_update), entries=crl.entries)


def validation_out(report: ValidationReport) -> ValidationOut:
    def entry(e: Any) -> PathEntryOut:
        return PathEntryOut(subject=e.subject, serial=e.serial, fingerprint_sha256=e.fingerprint_sha256,
                            not_before=isoformat_utc(e.not_before), not_after=isoformat_utc(e.not_after),
                            ca=e.ca, certificate_id=e.certificate_id)

    return ValidationOut(
        valid=report.valid,
        code=report.code,
        reason=report.reason,
        validation_time=isoformat_utc(report.validation_time),
        trust_root=entry(report.trust_root) if report.trust_root else None,
        path=[entry(e) for e in report.path],
        validity=ValidityOut(not_before=isoformat_utc(report.not_before), not_after=isoformat_utc(report.not_after),
                             valid_at_time=report.valid_at_time),
        key_usage=PurposeOut(purpose=report.purpose.purpose, satisfied=report.purpose.satisfied,
                             key_usage_any_of=list(report.purpose.key_usage_any_of),
                             extended_key_usage=report.purpose.extended_key_usage, reason=report.purpose.reason),
        revocation=RevocationOut(status=report.revocation.status, source=report.revocation.source,
                                 revoked_at=_time(report.revocation.revoked_at), reason=report.revocation.reason),
    )


def pem_or_base64(text: str) -> bytes:
    """PEM text as bytes, or the DER bytes of base64 text (anything else is passed on to fail parsing)."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        return stripped.encode("ascii", "replace")
    try:
        return base64.b64decode("".join(stripped.split()), validate=True)
    except (binascii.Error, ValueError):
        return stripped.encode("utf-8", "replace")


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


# -- certificate authorities -----------------------------------------------------------------------------


@router.get("/api/v1/cas", dependencies=[require(Permission.CA_READ)], response_model=list[CAOut],
            summary="List the certificate authorities")
def list_cas(request: Request) -> list[CAOut]:
    service = service_of(request)
    return [ca_out(info, service.options.base_url) for info in service.list_cas()]


@router.post("/api/v1/cas", dependencies=[require(Permission.CA_MANAGE)], response_model=CAOut, status_code=201,
             summary="Create a subordinate CA (with its OCSP responder and first CRL)")
def create_ca(request: Request, body: CreateCAIn) -> CAOut:
    service = service_of(request)
    principal = current_principal(request)
    info = service.create_ca(
        body.name,
        parent=body.parent or service.options.root_name,
        actor=principal.actor,
        algorithm=body.algorithm,
        common_name=body.common_name,
        path_length=body.path_length,
        name_constraints=body.constraints(),
        validity_days=body.validity_days,
    )
    return ca_out(info, service.options.base_url)


@router.get("/api/v1/cas/{name}", dependencies=[require(Permission.CA_READ)], response_model=CAOut,
            summary="Show one certificate authority")
def get_ca(request: Request, name: str) -> CAOut:
    service = service_of(request)
    return ca_out(service.get_ca(name), service.options.base_url)


@router.post("/api/v1/cas/{name}/crl", dependencies=[require(Permission.CA_MANAGE)], response_model=CRLOut,
             summary="Publish the CA's CRL now")
def publish_crl(request: Request, name: str) -> CRLOut:
    return crl_out(name, service_of(request).publish_crl(name))


# -- certificates -------------------------------------------------------------------------------------------


@router.post("/api/v1/certificates", dependencies=[require(Permission.CERTIFICATES_ISSUE)], response_model=IssueOut,
             status_code=201, summary="Issue a certificate (from a CSR, with a server-generated or custodial key)")
def issue_certificate(request: Request, body: IssueIn) -> IssueOut:
    service = service_of(request)
    principal = current_principal(request)
    if (body.csr is None) == (body.key is None):
        raise InvalidIssueRequest("give exactly one of csr and key", detail_zh="csr 与 key 必须且只能提供一个",
                                  rule="csr_or_key")
    issue = IssueRequest(
        profile=body.profile,
        ca=body.ca,
        key_mode=body.key.mode if body.key else "csr",
        csr=pem_or_base64(body.csr) if body.csr is not None else None,
        subject=body.subject,
        sans=body.sans.value() if body.sans is not None else None,
        validity_days=body.validity_days,
        owner=body.key.owner if body.key else None,
        pkcs12_password=_secret(body.key.pkcs12_password) if body.key else None,
        key_algorithm=body.key.algorithm if body.key else None,
    )
    # Delegated OCSP responder certificates speak for the CA: only CA managers may have them issued.
    privileged = principal.has(Permission.CA_MANAGE)
    return issue_out(service.issue(issue, actor=principal.actor, privileged=privileged))


@router.get("/api/v1/certificates", dependencies=[require(Permission.CERTIFICATES_READ)],
            response_model=Page[CertificateOut], summary="Search certificates")
def search_certificates(
    request: Request,
    page: PageParams = Depends(),
    subject: str | None = Query(None, max_length=200, description="Part of the subject (case-insensitive)."),
    serial: str | None = Query(None, max_length=64, description="Serial number, hexadecimal."),
    status: Literal["issued", "revoked", "hold", "reserved", "failed"] | None = Query(None),
    profile: str | None = Query(None, max_length=100),
    owner: str | None = Query(None, max_length=200),
    ca: str | None = Query(None, max_length=100),
    expires_before: dt.datetime | None = Query(None, description="RFC 3339 time, exclusive."),
    expires_after: dt.datetime | None = Query(None, description="RFC 3339 time, inclusive."),
) -> Page[CertificateOut]:
    serial_value = None
    if serial is not None:
        try:
            serial_value = int(serial.replace(":", "").lower().removeprefix("0x"), 16)
        except ValueError:
            raise InvalidInput("serial must be hexadecimal", detail_zh="序列号必须为十六进制") from None
    after = page.after()
    if after is not None and not isinstance(after, int):
        raise InvalidInput("the cursor is not valid; use next_cursor from a previous page", detail_zh="分页游标无效")
    query = CertificateQuery(
        subject=subject, serial=serial_value, status=status, profile=profile, owner=owner, ca=ca,
        expires_before=_aware(expires_before), expires_after=_aware(expires_after),
        after_id=after or 0, limit=page.limit,
    )
    items = [certificate_out(info) for info in service_of(request).search(query)]
    return page_of(items, page.limit, lambda item: item.id)


@router.post("/api/v1/certificates/validate", dependencies=[require(Permission.CERTIFICATES_READ)],
             response_model=ValidationOut, summary="Validate a certificate against Hengxin's roots and revocation data")
def validate_certificate(request: Request, body: ValidateIn) -> ValidationOut:
    report = service_of(request).validate(
        pem_or_base64(body.certificate),
        chain=[pem_or_base64(c) for c in body.chain],
        purpose=body.purpose,
        moment=_aware(body.validation_time),
    )
    return validation_out(report)


@router.get("/api/v1/certificates/{reference}", dependencies=[require(Permission.CERTIFICATES_READ)],
            response_model=CertificateOut, summary="Fetch a certificate by id or serial number")
def get_certificate(request: Request, reference: str) -> CertificateOut:
    parse_reference(reference)
    return certificate_out(service_of(request).get_certificate(reference))


@router.post("/api/v1/certificates/{reference}/renew", dependencies=[require(Permission.CERTIFICATES_ISSUE)],
             response_model=IssueOut, status_code=201, summary="Renew: a new certificate for the same key")
def renew_certificate(request: Request, reference: str, body: RenewIn | None = None) -> IssueOut:
    principal = current_principal(request)
    result = service_of(request).renew(reference, actor=principal.actor,
                                       validity_days=body.validity_days if body else None)
    return issue_out(result)


@router.post("/api/v1/certificates/{reference}/rekey", dependencies=[require(Permission.CERTIFICATES_ISSUE)],
             response_model=IssueOut, status_code=201, summary="Re-key: a new certificate for a new key")
def rekey_certificate(request: Request, reference: str, body: RekeyIn | None = None) -> IssueOut:
    principal = current_principal(request)
    body = body or RekeyIn.model_validate({})
    result = service_of(request).rekey(
        reference,
        actor=principal.actor,
        csr=pem_or_base64(body.csr) if body.csr is not None else None,
        pkcs12_password=_secret(body.pkcs12_password),
        key_algorithm=body.algorithm,
        validity_days=body.validity_days,
    )
    return issue_out(result)


@router.post("/api/v1/certificates/{reference}/revoke", dependencies=[require(Permission.CERTIFICATES_REVOKE)],
             response_model=CertificateOut, summary="Revoke (certificateHold: put on hold)")
def revoke_certificate(request: Request, reference: str, body: RevokeIn | None = None) -> CertificateOut:
    principal = current_principal(request)
    body = body or RevokeIn.model_validate({})
    info = service_of(request).revoke(reference, actor=principal.actor, reason=body.reason,
                                      invalidity_date=_aware(body.invalidity_date))
    return certificate_out(info)


@router.post("/api/v1/certificates/{reference}/release", dependencies=[require(Permission.CERTIFICATES_REVOKE)],
             response_model=CertificateOut, summary="Release a certificate from hold")
def release_certificate(request: Request, reference: str) -> CertificateOut:
    principal = current_principal(request)
    return certificate_out(service_of(request).release(reference, actor=principal.actor))

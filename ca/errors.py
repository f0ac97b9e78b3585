"""Errors of the certificate authority.

``CAError`` is the root of every error raised by :mod:`ca`; the leaves carry
stable dotted codes that clients and the API error table rely on.  Do not
rename a code once it has shipped.

Leaves that answer an OCSP request carry ``ocsp_status``, the
``OCSPResponseStatus`` an OCSP responder sends back for them, so the HTTP layer
can answer with :func:`ca.ocsp.build_ocsp_error` without a second table.
"""

from __future__ import annotations

from typing import ClassVar

from cryptography.x509.ocsp import OCSPResponseStatus

from core.errors import Category, HengxinError


class CAError(HengxinError):
    """Root of the certificate authority's errors.

    Raised directly only for broken invariants (a bug in the caller, such as a
    naive ``datetime``), so its category is ``INTERNAL``.
    """

    code = "ca.error"
    category = Category.INTERNAL
    title_en = "Certificate authority error"
    title_zh = "证书认证机构错误"


class ProfileViolation(CAError):
    """A request falls outside its certificate profile.

    The ``rule`` extra member names the rule that was broken, e.g. ``key_type``,
    ``validity``, ``san_required``, ``subject_attribute_not_allowed``.
    """

    code = "ca.profile_violation"
    category = Category.INVALID
    title_en = "Request violates the certificate profile"
    title_zh = "请求不符合证书模板"

    def __init__(self, detail: str | None = None, *, rule: str, detail_zh: str | None = None, **extra: object) -> None:
        super().__init__(detail, detail_zh=detail_zh, rule=rule, **extra)

    @property
    def rule(self) -> str:
        """The name of the profile rule that the request broke."""
        return str(self.extra["rule"])


class UnknownProfile(CAError):
    """No certificate profile has the requested name."""

    code = "ca.unknown_profile"
    category = Category.NOT_FOUND
    title_en = "Unknown certificate profile"
    title_zh = "证书模板不存在"


class ProfileConfigurationError(CAError):
    """The shipped profile data or the operator's overrides are invalid."""

    code = "ca.profile_configuration_invalid"
    category = Category.CONFIGURATION
    title_en = "Invalid certificate profile configuration"
    title_zh = "证书模板配置无效"


class UnsupportedKey(CAError):
    """A public key is of a type or size the CA never certifies."""

    code = "ca.unsupported_key"
    category = Category.INVALID
    title_en = "Unsupported key type or size"
    title_zh = "不支持的密钥类型或长度"


class CSRInvalid(CAError):
    """A certificate signing request cannot be parsed or is not acceptable."""

    code = "ca.csr_invalid"
    category = Category.INVALID
    title_en = "Invalid certificate signing request"
    title_zh = "证书签名请求无效"


class CSRSignatureInvalid(CSRInvalid):
    """The signature of a certificate signing request does not verify."""

    code = "ca.csr_signature_invalid"
    title_en = "The signature of the certificate signing request is invalid"
    title_zh = "证书签名请求的签名无效"


class IssuerInvalid(CAError):
    """The issuing certificate or key cannot issue what was asked.

    For example the key does not belong to the certificate, or the certificate
    is not a CA certificate allowed to sign certificates or CRLs.  This is a
    deployment fault, not a client's: the category is ``CONFIGURATION``.
    """

    code = "ca.issuer_invalid"
    category = Category.CONFIGURATION
    title_en = "The issuing CA cannot issue this"
    title_zh = "签发机构无法签发该内容"


class OCSPError(CAError):
    """Root of the errors met while answering an OCSP request."""

    code = "ca.ocsp_error"
    category = Category.INTERNAL
    title_en = "OCSP error"
    title_zh = "OCSP 错误"
    ocsp_status: ClassVar[OCSPResponseStatus] = OCSPResponseStatus.INTERNAL_ERROR


class OCSPMalformedRequest(OCSPError):
    """The OCSP request cannot be parsed or breaks RFC 6960 / RFC 8954."""

    code = "ca.ocsp_malformed_request"
    category = Category.INVALID
    title_en = "Malformed OCSP request"
    title_zh = "OCSP 请求格式错误"
    ocsp_status = OCSPResponseStatus.MALFORMED_REQUEST


class OCSPUnauthorized(OCSPError):
    """The responder is not authoritative for the certificate asked about."""

    code = "ca.ocsp_unauthorized"
    category = Category.FORBIDDEN
    title_en = "The OCSP responder is not authorised for this certificate"
    title_zh = "OCSP 响应器无权回答该证书的状态"
    ocsp_status = OCSPResponseStatus.UNAUTHORIZED

"""Errors of the CA service (issuance, revocation, CRL publication), on top of ``ca/errors.py``.

Codes are stable: clients and the API documentation rely on them.
"""

from __future__ import annotations

from ca.errors import CAError
from core.errors import Category


class UnknownCA(CAError):
    """No certificate authority has the given name."""

    code = "ca.unknown_ca"
    category = Category.NOT_FOUND
    title_en = "Unknown certificate authority"
    title_zh = "证书认证机构不存在"


class CertificateNotFound(CAError):
    """No certificate has the given id or serial number."""

    code = "ca.certificate_not_found"
    category = Category.NOT_FOUND
    title_en = "Certificate not found"
    title_zh = "证书不存在"


class AlreadyRevoked(CAError):
    """The certificate is already revoked (or already on hold, for a hold)."""

    code = "ca.already_revoked"
    category = Category.CONFLICT
    title_en = "The certificate is already revoked"
    title_zh = "证书已被吊销"


class NotOnHold(CAError):
    """Only a certificate on hold (certificateHold) can be released."""

    code = "ca.not_on_hold"
    category = Category.CONFLICT
    title_en = "The certificate is not on hold"
    title_zh = "证书未处于冻结状态"


class CertificateNotIssued(CAError):
    """The serial number is reserved but no certificate was issued under it."""

    code = "ca.certificate_not_issued"
    category = Category.CONFLICT
    title_en = "No certificate was issued under this serial number"
    title_zh = "该序列号下没有已签发的证书"


class DuplicateCAName(CAError):
    code = "ca.duplicate_name"
    category = Category.CONFLICT
    title_en = "A certificate authority with this name exists"
    title_zh = "同名证书认证机构已存在"


class ProfileRestricted(CAError):
    """The profile is reserved to CA managers (delegated OCSP responders: such a certificate speaks for the CA)."""

    code = "ca.profile_restricted"
    category = Category.FORBIDDEN
    title_en = "This profile is reserved to CA managers"
    title_zh = "该证书模板仅限 CA 管理员使用"


class CAInactive(CAError):
    """The CA is revoked or its creation did not finish; it issues nothing."""

    code = "ca.ca_inactive"
    category = Category.CONFLICT
    title_en = "The certificate authority is not active"
    title_zh = "证书认证机构不可用"


class RootNotRevocable(CAError):
    """A self-signed root is withdrawn by removing it from trust stores, not by a CRL."""

    code = "ca.root_not_revocable"
    category = Category.CONFLICT
    title_en = "A root certificate cannot be revoked"
    title_zh = "根证书不能被吊销"


class AmbiguousSerial(CAError):
    """Two CAs issued the same serial number; name the certificate by id."""

    code = "ca.ambiguous_serial"
    category = Category.CONFLICT
    title_en = "The serial number is used by more than one CA"
    title_zh = "多个证书认证机构使用了该序列号"


class InvalidIssueRequest(CAError):
    """The issuance request is incomplete or contradictory (no CSR, unknown key mode ...)."""

    code = "ca.invalid_request"
    category = Category.INVALID
    title_en = "Invalid certificate request"
    title_zh = "证书申请无效"


class PKCS12PasswordInvalid(CAError):
    """The password protecting a server-generated key is missing or too weak."""

    code = "ca.pkcs12_password_invalid"
    category = Category.INVALID
    title_en = "Unacceptable PKCS #12 password"
    title_zh = "PKCS #12 口令不符合要求"


class RevocationInvalid(CAError):
    """Unknown revocation reason, or an invalidity date in the future."""

    code = "ca.revocation_invalid"
    category = Category.INVALID
    title_en = "Invalid revocation request"
    title_zh = "吊销请求无效"


class CertificateInvalid(CAError):
    """A certificate given for validation cannot be parsed."""

    code = "ca.certificate_invalid"
    category = Category.INVALID
    title_en = "Not a valid X.509 certificate"
    title_zh = "不是有效的 X.509 证书"


class CRLUnavailable(CAError):
    """The CA has not published a CRL yet."""

    code = "ca.crl_unavailable"
    category = Category.NOT_FOUND
    title_en = "No CRL has been published"
    title_zh = "尚未发布 CRL"


class CRLBusy(CAError):
    """Another node is publishing CRLs and did not finish in time."""

    code = "ca.crl_busy"
    category = Category.UNAVAILABLE
    title_en = "CRL publication is busy"
    title_zh = "CRL 正在由其他节点发布"


class CRLStale(CAError):
    """A CA's newest CRL is past its nextUpdate (readiness probe)."""

    code = "ca.crl_stale"
    category = Category.UNAVAILABLE
    title_en = "A CRL is out of date"
    title_zh = "CRL 已过期"


class SerialExhausted(CAError):
    """Repeated serial number collisions: the random source or the database is broken."""

    code = "ca.serial_exhausted"
    category = Category.INTERNAL
    title_en = "No free serial number"
    title_zh = "无可用序列号"

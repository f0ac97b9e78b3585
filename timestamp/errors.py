"""Errors of the timestamp authority.

``TimestampError`` is the root; every leaf carries a stable dotted ``code``.
The TSA itself never raises for a bad request: :meth:`timestamp.tsa.TSAService.respond`
answers with a ``rejection`` response instead.  These errors come from
configuration (building a :class:`~timestamp.tsa.TSAService`), from
:func:`~timestamp.request.build_request` and from
:func:`~timestamp.verify.verify_token`.
"""

from __future__ import annotations

from core.errors import Category, HengxinError


class TimestampError(HengxinError):
    """Root of every error raised by the ``timestamp`` package."""

    code = "timestamp.error"
    category = Category.INTERNAL
    title_en = "Timestamp error"
    title_zh = "时间戳错误"


class TSAConfigurationError(TimestampError):
    """The TSA key, certificate, policy or accuracy configuration is unusable."""

    code = "timestamp.configuration"
    category = Category.CONFIGURATION
    title_en = "Invalid timestamp authority configuration"
    title_zh = "时间戳服务配置无效"


class TimestampRequestInvalid(TimestampError):
    """A timestamp request cannot be built from the given arguments."""

    code = "timestamp.request_invalid"
    category = Category.INVALID
    title_en = "Invalid timestamp request"
    title_zh = "时间戳请求无效"


class UnsupportedAlgorithm(TimestampError):
    """A hash or signature algorithm is unknown or refused (SHA-1, MD5)."""

    code = "timestamp.unsupported_algorithm"
    category = Category.INVALID
    title_en = "Unsupported or refused algorithm"
    title_zh = "不支持或被拒绝的算法"


class MalformedTimestamp(TimestampError):
    """The bytes are not a well-formed timestamp response or token."""

    code = "timestamp.malformed"
    category = Category.INVALID
    title_en = "Malformed timestamp token"
    title_zh = "时间戳令牌格式错误"


class TimestampNotGranted(TimestampError):
    """The response carries no token: the TSA rejected the request.

    ``extra`` holds ``status`` and ``failure_info`` (asn1crypto names).
    """

    code = "timestamp.not_granted"
    category = Category.INVALID
    title_en = "The timestamp request was not granted"
    title_zh = "时间戳请求未被批准"


class ImprintMismatch(TimestampError):
    """The token's message imprint does not match the data or digest."""

    code = "timestamp.imprint_mismatch"
    category = Category.INVALID
    title_en = "The timestamp does not cover this data"
    title_zh = "时间戳与数据不匹配"


class InvalidSignature(TimestampError):
    """The token's signature or its signed attributes do not verify."""

    code = "timestamp.invalid_signature"
    category = Category.INVALID
    title_en = "Invalid timestamp signature"
    title_zh = "时间戳签名无效"


class SigningCertificateMismatch(TimestampError):
    """The ESSCertID(v2) attribute does not identify the signer certificate."""

    code = "timestamp.signing_certificate_mismatch"
    category = Category.INVALID
    title_en = "The signing-certificate attribute does not match the TSA certificate"
    title_zh = "签名证书属性与时间戳服务证书不匹配"


class NotATSACertificate(TimestampError):
    """The signer certificate is not a TSA certificate (EKU timeStamping, critical)."""

    code = "timestamp.not_tsa_certificate"
    category = Category.INVALID
    title_en = "The signer certificate is not a timestamping certificate"
    title_zh = "签名证书不是时间戳证书"


class UntrustedTimestamp(TimestampError):
    """No valid chain leads from the signer certificate to a trusted root."""

    code = "timestamp.untrusted"
    category = Category.INVALID
    title_en = "The timestamp authority is not trusted"
    title_zh = "时间戳服务不受信任"


class NonceMismatch(TimestampError):
    """The token's nonce differs from the expected one."""

    code = "timestamp.nonce_mismatch"
    category = Category.INVALID
    title_en = "The timestamp nonce does not match the request"
    title_zh = "时间戳随机数与请求不匹配"


class PolicyMismatch(TimestampError):
    """The token's policy differs from the expected one."""

    code = "timestamp.policy_mismatch"
    category = Category.INVALID
    title_en = "The timestamp policy is not the expected one"
    title_zh = "时间戳策略与预期不符"


class ClockUnavailable(TimestampError):
    """The TSA clock is not known to be within its declared accuracy."""

    code = "timestamp.clock_unavailable"
    category = Category.UNAVAILABLE
    title_en = "The timestamp clock is not synchronised"
    title_zh = "时间戳时钟未同步"

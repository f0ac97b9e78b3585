"""Errors of the signing package: one root and a few leaves, each with a stable code.

Every failure that ``signing`` lets out is a :class:`SigningError` (or a
``core`` key-store error raised by the signer itself); no pyHanko,
certvalidator or asn1crypto exception crosses the package boundary.
"""

from __future__ import annotations

from core.errors import Category, HengxinError


class SigningError(HengxinError):
    """Root of the signing errors: an unexpected failure while signing or verifying."""

    code = "signing.error"
    category = Category.INTERNAL
    title_en = "Signing error"
    title_zh = "签名错误"


class SigningRequestInvalid(SigningError):
    """A parameter of the request is malformed (unknown level, bad field name, bad rectangle ...)."""

    code = "signing.request_invalid"
    category = Category.INVALID
    title_en = "Invalid signing request"
    title_zh = "签名请求无效"


class PdfInvalid(SigningError):
    """The document is not a PDF that can be read (broken, truncated, not a PDF at all)."""

    code = "signing.pdf_invalid"
    category = Category.INVALID
    title_en = "The document is not a readable PDF"
    title_zh = "文档不是可读取的 PDF"


class PdfEncrypted(SigningError):
    """The PDF is encrypted; it must be decrypted before it is signed."""

    code = "signing.pdf_encrypted"
    category = Category.INVALID
    title_en = "Encrypted PDF documents are not accepted"
    title_zh = "不接受加密的 PDF 文档"


class PdfTooLarge(SigningError):
    """The document is larger than the configured maximum size."""

    code = "signing.pdf_too_large"
    category = Category.TOO_LARGE
    title_en = "The document is too large"
    title_zh = "文档过大"


class ContentTooLarge(SigningError):
    """The content to sign with a detached CMS signature is larger than the configured maximum."""

    code = "signing.content_too_large"
    category = Category.TOO_LARGE
    title_en = "The content to sign is too large"
    title_zh = "待签名内容过大"


class PdfTooManyPages(SigningError):
    """The PDF has more pages than the configured maximum."""

    code = "signing.pdf_too_many_pages"
    category = Category.TOO_LARGE
    title_en = "The PDF has too many pages"
    title_zh = "PDF 页数过多"


class FieldConflict(SigningError):
    """The named signature field already holds a signature, or is not a signature field."""

    code = "signing.field_conflict"
    category = Category.CONFLICT
    title_en = "The signature field cannot be used"
    title_zh = "签名域不可用"


class AppearanceInvalid(SigningError):
    """The visible signature cannot be drawn: page out of range, bad rectangle, unreadable image."""

    code = "signing.appearance_invalid"
    category = Category.INVALID
    title_en = "Invalid visible signature"
    title_zh = "可见签名参数无效"


class FontUnavailable(SigningError):
    """The font for the visible signature text is missing or cannot be used."""

    code = "signing.font_unavailable"
    category = Category.CONFIGURATION
    title_en = "The signature font is unavailable"
    title_zh = "签名字体不可用"


class CertificateUnsuitable(SigningError):
    """The signer certificate cannot make this signature (key usage, validity)."""

    code = "signing.certificate_unsuitable"
    category = Category.CONFLICT
    title_en = "The signing certificate is not suitable"
    title_zh = "签名证书不适用"


class LevelUnavailable(SigningError):
    """The requested level needs something that is missing: a timestamp authority or revocation information."""

    code = "signing.level_unavailable"
    category = Category.CONFLICT
    title_en = "The requested signature level cannot be produced"
    title_zh = "无法生成所要求的签名级别"


class TimestampFailed(SigningError):
    """The timestamp authority refused the request or returned an unusable response."""

    code = "signing.timestamp_failed"
    category = Category.UNAVAILABLE
    title_en = "The timestamp authority did not issue a timestamp"
    title_zh = "时间戳服务未签发时间戳"


class CMSInvalid(SigningError):
    """The CMS signature cannot be parsed or is not a detached SignedData with one signer."""

    code = "signing.cms_invalid"
    category = Category.INVALID
    title_en = "The CMS signature is not readable"
    title_zh = "CMS 签名不可读取"


class NoSignature(SigningError):
    """The document carries no signature to verify."""

    code = "signing.no_signature"
    category = Category.INVALID
    title_en = "The document has no signature"
    title_zh = "文档中没有签名"

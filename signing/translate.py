"""Turn what pyHanko, certvalidator and asn1crypto raise into signing errors.

One place decides what a library exception means for the caller, so no
foreign exception crosses the package boundary (STYLE.md: adapters translate).
"""

from __future__ import annotations

import logging

from pyhanko.pdf_utils.layout import LayoutError
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.general import UnacceptableSignerError
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.errors import (
    InsufficientRevinfoError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)

from core.errors import HengxinError
from signing.errors import (
    AppearanceInvalid,
    CertificateUnsuitable,
    LevelUnavailable,
    PdfInvalid,
    SigningError,
    TimestampFailed,
)

logger = logging.getLogger(__name__)


def signing_failure(error: BaseException, *, long_term: bool, document: str = "PDF") -> HengxinError:
    """The Hengxin error to raise for ``error``, caught while signing.

    ``long_term`` says whether validation data was being collected (B-LT,
    B-LTA, or a document timestamp with a revocation provider): then a
    certificate path that does not validate means the level cannot be made.
    """
    if isinstance(error, HengxinError):
        return error
    # pyHanko wraps certvalidator and timestamp failures in its own SigningError: judge the cause.
    cause = error.__cause__
    if isinstance(error, PyHankoSigningError) and isinstance(
        cause, HengxinError | TimestampRequestError | ValidationError | PathBuildingError
    ):
        return signing_failure(cause, long_term=long_term, document=document)
    if isinstance(error, TimestampRequestError):
        return TimestampFailed(
            "the timestamp authority did not grant a timestamp", detail_zh="时间戳服务未签发时间戳"
        )
    if isinstance(error, RevokedError):
        return CertificateUnsuitable(
            "a certificate of the signature is revoked", detail_zh="签名所用的证书已被吊销"
        )
    if isinstance(error, InsufficientRevinfoError):
        return LevelUnavailable(
            "revocation information is missing for a certificate of the signature or the timestamp",
            detail_zh="签名或时间戳所用的证书缺少吊销信息",
        )
    if isinstance(error, PathBuildingError | PathValidationError | ValidationError):
        if long_term:
            return LevelUnavailable(
                "the certificate chain of the signer or the timestamp authority does not validate "
                "against the trust roots with the revocation information available",
                detail_zh="签名者或时间戳服务的证书链无法依据信任根和现有吊销信息验证",
            )
        return CertificateUnsuitable("the signing certificate does not validate", detail_zh="签名证书验证失败")
    if isinstance(error, UnacceptableSignerError):
        return CertificateUnsuitable("the signing certificate is not acceptable", detail_zh="签名证书不可接受")
    if isinstance(error, LayoutError):
        return AppearanceInvalid("the visible signature cannot be laid out", detail_zh="可见签名无法排版")
    if isinstance(error, PyHankoSigningError):
        logger.info("pyHanko refused to sign: %s", error)
        return SigningError("the document cannot be signed", detail_zh="文档无法签名")
    if isinstance(error, PdfError | KeyError | TypeError | ValueError | IndexError | AttributeError | RecursionError):
        logger.info("the %s could not be processed: %r", document, error)
        return PdfInvalid(
            f"the {document} could not be processed", detail_zh=f"{document} 无法处理"
        )
    logger.exception("unexpected failure while signing", exc_info=error)
    return SigningError("the document could not be signed", detail_zh="文档签名失败")

"""Detached CMS (CAdES) signatures over arbitrary data, returned as DER ``.p7s``.

* **B-B**: ``SignedData`` without encapsulated content, one ``SignerInfo``
  with the content-type, message-digest, signing-certificate-v2 and CMS
  algorithm-protection signed attributes, and the signer's certificate chain;
* **B-T**: B-B plus a signature timestamp token (``id-aa-signatureTimeStampToken``)
  over the signature value, as an unsigned attribute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable

from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko.sign.timestamps.api import TimeStamper

from core.errors import HengxinError
from signing.attributes import with_prepared_attributes
from signing.errors import ContentTooLarge, LevelUnavailable, SigningRequestInvalid
from signing.pdf import DEFAULT_KEY_USAGE, PAdESLevel, check_signer_certificate, default_digest
from signing.translate import signing_failure

DEFAULT_MAX_BYTES = 100 * 1024 * 1024


async def async_sign_cms_detached(
    data: bytes,
    signer: Signer,
    *,
    level: PAdESLevel | str = PAdESLevel.B_B,
    timestamper: TimeStamper | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    key_usage: Iterable[str] = DEFAULT_KEY_USAGE,
    md_algorithm: str | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> bytes:
    """Sign ``data`` with a detached CAdES signature at ``level`` (``B-B`` or ``B-T``) and return it as DER.

    Raises :class:`SigningRequestInvalid` for another level,
    :class:`ContentTooLarge` above ``max_bytes``, :class:`CertificateUnsuitable`,
    :class:`LevelUnavailable` for B-T without a timestamper,
    :class:`TimestampFailed`, and the key store's errors.
    """
    chosen = PAdESLevel.parse(level)
    if chosen not in (PAdESLevel.B_B, PAdESLevel.B_T):
        raise SigningRequestInvalid(
            "detached CMS signatures are made at level B-B or B-T", detail_zh="分离式 CMS 签名仅支持 B-B 或 B-T 级别"
        )
    if not isinstance(data, bytes | bytearray):
        raise SigningRequestInvalid("the content must be bytes", detail_zh="内容必须是字节串")
    if len(data) > max_bytes:
        raise ContentTooLarge(
            f"the content has {len(data)} bytes, more than the limit of {max_bytes}",
            detail_zh=f"内容大小 {len(data)} 字节，超过上限 {max_bytes} 字节",
            limit=max_bytes,
        )
    now = (clock or (lambda: dt.datetime.now(dt.UTC)))()
    check_signer_certificate(signer.signing_cert, key_usage, now)
    if chosen is PAdESLevel.B_T and timestamper is None:
        raise LevelUnavailable("B-T needs a timestamp authority and none is configured",
                               detail_zh="B-T 需要时间戳服务，但未配置")
    try:
        content_info = await with_prepared_attributes(signer, signing_time=now).async_sign_general_data(
            bytes(data),
            md_algorithm or default_digest(signer),
            detached=True,
            use_cades=True,
            timestamper=timestamper if chosen is PAdESLevel.B_T else None,
        )
    except HengxinError:
        raise
    except Exception as e:
        raise signing_failure(e, long_term=False, document="content") from e
    return content_info.dump()


def sign_cms_detached(data: bytes, signer: Signer, **options: object) -> bytes:
    """Synchronous :func:`async_sign_cms_detached`; must not be called from a coroutine."""
    return asyncio.run(async_sign_cms_detached(data, signer, **options))  # type: ignore[arg-type]

"""PAdES signatures on PDF documents: B-B, B-T, B-LT and B-LTA, and document timestamps.

Every signature is an incremental update, so earlier signatures stay valid.
What each level embeds:

* **B-B**: a CMS ``SignedData`` (``/SubFilter /ETSI.CAdES.detached``) with the
  signer certificate, its chain and the signing-certificate-v2 attribute;
* **B-T**: B-B plus a signature timestamp token from the timestamp provider;
* **B-LT**: B-T plus a document security store (DSS) with the certificates,
  CRLs and OCSP responses that validate the signer, its CAs and the TSA,
  written in the same revision as the signature and taken offline from the
  revocation provider;
* **B-LTA**: B-LT plus a document timestamp over the whole file.

The synchronous functions run an event loop of their own (``asyncio.run``):
call them from worker threads, and the ``async_`` versions from coroutines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import io
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter, enumerate_sig_fields
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    PdfSignatureMetadata,
    PdfSigner,
    PdfTimeStamper,
    SigDSSPlacementPreference,
    TimestampDSSContentSettings,
)
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from core.errors import HengxinError
from signing.appearance import VisibleSignature, stamp_style, text_parameters
from signing.attributes import with_prepared_attributes
from signing.context import CertificateLike, as_certificates, ask_revocation, is_self_signed, validation_context
from signing.errors import (
    AppearanceInvalid,
    CertificateUnsuitable,
    FieldConflict,
    LevelUnavailable,
    PdfEncrypted,
    PdfInvalid,
    PdfTooLarge,
    PdfTooManyPages,
    SigningRequestInvalid,
)
from signing.interfaces import RevocationProvider
from signing.translate import signing_failure

Clock = Callable[[], dt.datetime]
DEFAULT_KEY_USAGE: frozenset[str] = frozenset({"non_repudiation"})
_FIELD_NAME = re.compile(r"^[^.\x00-\x1f]{1,100}$")
_HEADER_WINDOW = 1024


class PAdESLevel(enum.StrEnum):
    """The PAdES baseline levels (ETSI EN 319 142-1)."""

    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @classmethod
    def parse(cls, value: str | PAdESLevel) -> PAdESLevel:
        """The level named ``value``; raises :class:`SigningRequestInvalid` for an unknown name."""
        try:
            return cls(str(value).upper())
        except ValueError:
            allowed = ", ".join(level.value for level in cls)
            raise SigningRequestInvalid(
                f"unknown signature level {value!r}; choose one of {allowed}",
                detail_zh=f"未知的签名级别 {value!r}；可选 {allowed}",
            ) from None

    @property
    def needs_timestamp(self) -> bool:
        """Whether the level includes a signature timestamp (B-T and above)."""
        return self is not PAdESLevel.B_B

    @property
    def needs_revocation(self) -> bool:
        """Whether the level embeds validation data (B-LT and above)."""
        return self in (PAdESLevel.B_LT, PAdESLevel.B_LTA)

    @property
    def rank(self) -> int:
        """0 for B-B up to 3 for B-LTA."""
        return list(PAdESLevel).index(self)


@dataclasses.dataclass(frozen=True)
class PdfLimits:
    """What a PDF may be: at most ``max_bytes`` long with at most ``max_pages`` pages.

    ``strict`` reads the file with pyHanko's strict parser, which refuses
    files whose cross-reference data is wrong instead of guessing.
    """

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    strict: bool = True

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_pages < 1:
            raise SigningRequestInvalid("PDF limits must be positive", detail_zh="PDF 限制必须为正数")


# -- reading -------------------------------------------------------------------------------------


def _check_header(data: bytes, limits: PdfLimits) -> None:
    if len(data) > limits.max_bytes:
        raise PdfTooLarge(
            f"the document has {len(data)} bytes, more than the limit of {limits.max_bytes}",
            detail_zh=f"文档大小 {len(data)} 字节，超过上限 {limits.max_bytes} 字节",
            limit=limits.max_bytes,
        )
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise PdfInvalid("the document is not a PDF (no %PDF- header)", detail_zh="文档不是 PDF（缺少 %PDF- 文件头）")


def count_pages(reader: PdfFileReader, max_pages: int) -> int:
    """Count the leaves of the page tree, refusing cycles and more than ``max_pages`` pages.

    Raises :class:`PdfTooManyPages` or :class:`PdfInvalid`.
    """
    from pyhanko.pdf_utils import generic

    pages_ref = reader.root.raw_get("/Pages")
    stack = [pages_ref]
    seen: set[tuple[int, int]] = set()
    count = 0
    while stack:
        item = stack.pop()
        if isinstance(item, generic.IndirectObject):
            key = (item.idnum, item.generation)
            if key in seen:
                raise PdfInvalid("the page tree contains a cycle", detail_zh="页面树存在循环")
            seen.add(key)
            item = item.get_object()
        if not isinstance(item, generic.DictionaryObject):
            raise PdfInvalid("the page tree contains a node that is not a dictionary", detail_zh="页面树节点无效")
        if "/Kids" in item:
            kids = item.raw_get("/Kids")
            if isinstance(kids, generic.IndirectObject):
                kids = kids.get_object()
            if not isinstance(kids, generic.ArrayObject):
                raise PdfInvalid("a page tree node has no valid /Kids array", detail_zh="页面树节点缺少有效的 /Kids")
            stack.extend(kids.raw_get(i) for i in reversed(range(len(kids))))
        else:
            count += 1
            if count > max_pages:
                raise PdfTooManyPages(
                    f"the document has more than {max_pages} pages",
                    detail_zh=f"文档超过 {max_pages} 页",
                    limit=max_pages,
                )
    if count == 0:
        raise PdfInvalid("the document has no pages", detail_zh="文档没有页面")
    return count


def _check_reader(reader: PdfFileReader, limits: PdfLimits) -> int:
    if reader.encrypted:
        raise PdfEncrypted(
            "the PDF is encrypted; decrypt it before signing or verifying",
            detail_zh="PDF 已加密；请先解密再签名或验证",
        )
    return count_pages(reader, limits.max_pages)


@dataclasses.dataclass
class _OpenedPdf:
    writer: IncrementalPdfFileWriter
    pages: int
    fields: dict[str, bool]  # signature field name -> already signed


def _open_for_update(data: bytes, limits: PdfLimits) -> _OpenedPdf:
    """Parse ``data`` for an incremental update, checking every limit first.

    Raises :class:`PdfTooLarge`, :class:`PdfInvalid`, :class:`PdfEncrypted`
    or :class:`PdfTooManyPages`; never a parser exception.
    """
    data = bytes(data)
    _check_header(data, limits)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=limits.strict)
        pages = _check_reader(writer.prev, limits)
        # Read the form now, not half-way through signing.
        fields = {name: value is not None for name, value, _ in enumerate_sig_fields(writer.prev)}
    except HengxinError:
        raise
    except Exception as e:
        raise PdfInvalid("the PDF cannot be read", detail_zh="PDF 无法读取") from e
    return _OpenedPdf(writer, pages, fields)


def read_pdf(data: bytes, limits: PdfLimits) -> PdfFileReader:
    """Parse ``data`` for reading (verification), with the same checks as for signing.

    Raises :class:`PdfTooLarge`, :class:`PdfInvalid`, :class:`PdfEncrypted`
    or :class:`PdfTooManyPages`.
    """
    data = bytes(data)
    _check_header(data, limits)
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=limits.strict)
        _check_reader(reader, limits)
    except HengxinError:
        raise
    except Exception as e:
        raise PdfInvalid("the PDF cannot be read", detail_zh="PDF 无法读取") from e
    return reader


# -- fields --------------------------------------------------------------------------------------


def _choose_field_name(requested: str | None, existing: dict[str, bool], prefix: str) -> tuple[str, bool]:
    """The field to sign and whether it has to be created.

    Raises :class:`SigningRequestInvalid` for a malformed name and
    :class:`FieldConflict` for a field that is already signed.
    """
    if requested is None:
        number = len(existing) + 1
        while f"{prefix}{number}" in existing:
            number += 1
        return f"{prefix}{number}", True
    if not isinstance(requested, str) or not _FIELD_NAME.match(requested):
        raise SigningRequestInvalid(
            "the field name must be 1 to 100 characters without dots or control characters",
            detail_zh="签名域名称须为 1 到 100 个字符，且不含句点或控制字符",
        )
    if requested in existing:
        if existing[requested]:
            raise FieldConflict(
                f"the signature field {requested!r} is already signed", detail_zh=f"签名域 {requested!r} 已被签名"
            )
        return requested, False
    return requested, True


# -- the signer's certificate -----------------------------------------------------------------------


def check_signer_certificate(
    certificate: asn1_x509.Certificate | None, key_usage: Iterable[str], now: dt.datetime
) -> asn1_x509.Certificate:
    """Return the signer certificate if it may sign now with ``key_usage``.

    Raises :class:`CertificateUnsuitable` when it is missing, lacks one of the
    key usages (asn1crypto names such as ``non_repudiation``), or is outside its
    validity period.
    """
    if certificate is None:
        raise CertificateUnsuitable("the signer has no certificate", detail_zh="签名者没有证书")
    present = set(certificate.key_usage_value.native) if certificate.key_usage_value else set()
    missing = sorted(set(key_usage) - present)
    if missing:
        raise CertificateUnsuitable(
            f"the signing certificate lacks the key usage {', '.join(missing)}",
            detail_zh=f"签名证书缺少密钥用法 {', '.join(missing)}",
            missing_key_usage=missing,
        )
    validity = certificate["tbs_certificate"]["validity"]
    if not validity["not_before"].native <= now <= validity["not_after"].native:
        raise CertificateUnsuitable("the signing certificate is not valid now", detail_zh="签名证书当前不在有效期内")
    return certificate


def _registry_certificates(registry: object) -> list[asn1_x509.Certificate]:
    try:
        return list(registry)  # type: ignore[call-overload]
    except TypeError:
        return []


async def _long_term_context(
    *,
    chain: Sequence[asn1_x509.Certificate],
    timestamper: TimeStamper,
    revocation: RevocationProvider,
    trust_roots: Sequence[CertificateLike] | None,
    md_algorithm: str,
) -> ValidationContext:
    """A validation context holding the revocation data for ``chain`` and the TSA's certificates.

    Asks the timestamper for its (cached) dummy token first, so the TSA
    certificates are known before the real token exists.  Raises
    :class:`LevelUnavailable` when no trust root is known or the provider has
    nothing for these certificates.
    """
    try:
        await timestamper.async_dummy_response(md_algorithm)
    except HengxinError:
        raise
    except Exception as e:
        raise signing_failure(e, long_term=True) from e
    tsa_certificates = _registry_certificates(timestamper.cert_registry)
    everything = as_certificates([*chain, *tsa_certificates])
    roots = as_certificates(trust_roots) if trust_roots else [c for c in everything if is_self_signed(c)]
    if not roots:
        raise LevelUnavailable(
            "no trust root is known for the signer and the timestamp authority",
            detail_zh="签名者和时间戳服务没有已知的信任根",
        )
    root_digests = {c.sha256 for c in roots}
    below_roots = [c for c in everything if c.sha256 not in root_digests]
    info = ask_revocation(revocation, below_roots)
    if not info:
        raise LevelUnavailable(
            "the revocation provider has no revocation information for this signature",
            detail_zh="吊销信息提供方没有此签名所需的吊销信息",
        )
    return validation_context(roots, revocation=info, other_certificates=below_roots, revocation_mode="require")


# -- the space reserved for the signature ------------------------------------------------------------

# pyHanko sizes the /Contents placeholder by building a complete dummy CMS
# object before every signature, which costs as much as the signature itself.
# That size depends only on the signer's certificates, the digest algorithm and
# the timestamper's dummy token (which pyHanko itself caches per timestamper and
# digest); every PAdES signature with the same three gets the same estimate.
# So it is computed once per (signer, timestamper, digest), the way pyHanko
# computes it, and passed as ``bytes_reserved``.
_RESERVED: weakref.WeakKeyDictionary[Signer, dict[tuple[str, TimeStamper | None], int]] = (
    weakref.WeakKeyDictionary()
)
_RESERVED_LOCK = threading.Lock()
_RESERVED_PER_SIGNER = 8  # timestampers remembered per signer (one in the platform; tests make many)


async def _reserved_bytes(
    signer: Signer, prepared: Signer, timestamper: TimeStamper | None, digest: str, now: dt.datetime
) -> int:
    """Bytes of /Contents to reserve: pyHanko's estimate (a dry-run CMS object, hex, plus 50 %), remembered.

    ``prepared`` is ``signer`` as it signs (:func:`signing.attributes.with_prepared_attributes`); the size is
    remembered for ``signer``, which lives as long as the platform keeps it.
    """
    key = (digest, timestamper)
    try:
        with _RESERVED_LOCK:
            known = _RESERVED.get(signer, {}).get(key)
        remember = True
    except TypeError:  # a signer or timestamper that cannot be a (weak) dictionary key: size every time
        known, remember = None, False
    if known is not None:
        return known
    dummy = await prepared.async_sign(
        hashes.Hash(get_pyca_cryptography_hash(digest)).finalize(),
        digest,
        use_pades=True,
        dry_run=True,
        timestamper=timestamper,
        signed_attr_settings=PdfCMSSignedAttributes(signing_time=now),
    )
    hex_length = len(dummy.dump()) * 2
    reserved = hex_length + 2 * (hex_length // 4)  # pyHanko's margin: the real token may differ a little
    if remember:
        with _RESERVED_LOCK:
            sizes = _RESERVED.setdefault(signer, {})
            if len(sizes) >= _RESERVED_PER_SIGNER:
                sizes.clear()
            sizes[key] = reserved
    return reserved


# -- signing -------------------------------------------------------------------------------------


async def async_sign_pdf(
    pdf: bytes,
    signer: Signer,
    *,
    level: PAdESLevel | str = PAdESLevel.B_T,
    limits: PdfLimits = PdfLimits(),  # noqa: B008 - immutable
    timestamper: TimeStamper | None = None,
    revocation: RevocationProvider | None = None,
    trust_roots: Sequence[CertificateLike] | None = None,
    visible: VisibleSignature | None = None,
    reason: str | None = None,
    location: str | None = None,
    contact: str | None = None,
    field_name: str | None = None,
    key_usage: Iterable[str] = DEFAULT_KEY_USAGE,
    md_algorithm: str | None = None,
    clock: Clock | None = None,
) -> bytes:
    """Sign ``pdf`` at ``level`` and return the signed document (the input plus one incremental update).

    ``timestamper`` is needed from B-T, ``revocation`` from B-LT;
    ``trust_roots`` (default: the self-signed certificates of the signer's and
    the TSA's chains) anchor the validation done before validation data is
    embedded.  ``field_name`` names a new field or an existing empty one
    (default ``Signature<n>``).  ``key_usage`` is what the signer
    certificate must allow (asn1crypto names, default nonRepudiation).

    Raises :class:`PdfTooLarge`, :class:`PdfInvalid`, :class:`PdfEncrypted`,
    :class:`PdfTooManyPages` for the document; :class:`SigningRequestInvalid`,
    :class:`FieldConflict`, :class:`AppearanceInvalid` for the request;
    :class:`CertificateUnsuitable` for the signer;
    :class:`LevelUnavailable` when a provider the level needs is missing or
    has no data; :class:`TimestampFailed` when the TSA refuses; and the key
    store's own errors from the signer.
    """
    level = PAdESLevel.parse(level)
    now = (clock or _utc_now)()
    check_signer_certificate(signer.signing_cert, key_usage, now)
    if level.needs_timestamp and timestamper is None:
        raise LevelUnavailable(
            f"{level} needs a timestamp authority and none is configured", detail_zh=f"{level} 需要时间戳服务，但未配置"
        )
    if level.needs_revocation and revocation is None:
        raise LevelUnavailable(
            f"{level} needs revocation information and no provider is configured",
            detail_zh=f"{level} 需要吊销信息，但未配置提供方",
        )
    for name, value in (("reason", reason), ("location", location), ("contact", contact)):
        if value is not None and (not isinstance(value, str) or len(value) > 500):
            raise SigningRequestInvalid(f"{name} must be text of at most 500 characters",
                                        detail_zh=f"{name} 须为不超过 500 个字符的文本")

    opened = _open_for_update(pdf, limits)
    writer = opened.writer
    name, new_field = _choose_field_name(field_name, opened.fields, "Signature")

    style = None
    text_params = None
    field_spec = SigFieldSpec(sig_field_name=name) if new_field else None
    if visible is not None:
        if not new_field:
            raise SigningRequestInvalid(
                "a visible signature needs a new field; the existing field keeps its own rectangle",
                detail_zh="可见签名需要新建签名域；已有签名域使用其自身的位置",
            )
        if not isinstance(visible.page, int) or not 1 <= visible.page <= opened.pages:
            raise _page_out_of_range(visible.page, opened.pages)
        box = visible.box()
        style, has_text = stamp_style(visible)
        field_spec = SigFieldSpec(sig_field_name=name, on_page=visible.page - 1, box=box)
        if has_text:
            text_params = text_parameters(
                visible, signer=_display_name(signer.signing_cert), reason=reason, location=location, now=now
            )

    digest = md_algorithm or default_digest(signer)
    chain = [signer.signing_cert, *_registry_certificates(signer.cert_registry)]
    try:
        context = None
        if level.needs_revocation:
            assert timestamper is not None and revocation is not None  # checked above
            context = await _long_term_context(
                chain=chain, timestamper=timestamper, revocation=revocation, trust_roots=trust_roots,
                md_algorithm=digest,
            )
        metadata = PdfSignatureMetadata(
            field_name=name,
            md_algorithm=digest,
            reason=reason,
            location=location,
            contact_info=contact,
            subfilter=SigSeedSubFilter.PADES,
            embed_validation_info=level.needs_revocation,
            use_pades_lta=level is PAdESLevel.B_LTA,
            validation_context=context,
            signer_key_usage=set(key_usage),
            # One revision for signature and DSS: validators that do not analyse
            # incremental updates still see a B-LT signature covering the whole file.
            dss_settings=DSSContentSettings(
                include_vri=False, placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE
            ),
        )
        prepared = with_prepared_attributes(signer, signing_time=None)
        pdf_signer = PdfSigner(
            metadata,
            prepared,
            timestamper=timestamper if level.needs_timestamp else None,
            stamp_style=style,
            new_field_spec=field_spec,
        )
        reserved = await _reserved_bytes(
            signer, prepared, timestamper if level.needs_timestamp else None, digest, now
        )
        output = io.BytesIO()
        await pdf_signer.async_sign_pdf(
            writer, existing_fields_only=not new_field, appearance_text_params=text_params, output=output,
            bytes_reserved=reserved,
        )
    except HengxinError:
        raise
    except Exception as e:
        raise signing_failure(e, long_term=level.needs_revocation) from e
    return output.getvalue()


def sign_pdf(pdf: bytes, signer: Signer, **options: object) -> bytes:
    """Synchronous :func:`async_sign_pdf`; same arguments, same errors.

    Runs its own event loop, so it must not be called from a coroutine.
    """
    return asyncio.run(async_sign_pdf(pdf, signer, **options))  # type: ignore[arg-type]


async def async_add_document_timestamp(
    pdf: bytes,
    timestamper: TimeStamper,
    *,
    limits: PdfLimits = PdfLimits(),  # noqa: B008 - immutable
    revocation: RevocationProvider | None = None,
    trust_roots: Sequence[CertificateLike] | None = None,
    field_name: str | None = None,
    md_algorithm: str = "sha256",
) -> bytes:
    """Add a document timestamp (``/DocTimeStamp``, ETSI.RFC3161) over the whole of ``pdf``.

    With ``revocation``, the TSA's validation data is added to the DSS in a
    revision after the timestamp, as a B-LTA archive-timestamp renewal does.

    Raises the document errors of :func:`async_sign_pdf`,
    :class:`FieldConflict`, :class:`TimestampFailed` and :class:`LevelUnavailable`.
    """
    opened = _open_for_update(pdf, limits)
    writer = opened.writer
    name, new_field = _choose_field_name(field_name, opened.fields, "DocumentTimestamp")
    if not new_field:
        raise FieldConflict(
            f"a document timestamp needs a new field; {name!r} already exists",
            detail_zh=f"文档时间戳需要新的签名域；{name!r} 已存在",
        )
    try:
        context = None
        if revocation is not None:
            context = await _long_term_context(
                chain=[], timestamper=timestamper, revocation=revocation, trust_roots=trust_roots,
                md_algorithm=md_algorithm,
            )
        output = io.BytesIO()
        await PdfTimeStamper(timestamper, field_name=name).async_timestamp_pdf(
            writer,
            md_algorithm,
            validation_context=context,
            output=output,
            dss_settings=TimestampDSSContentSettings(include_vri=False),
        )
    except HengxinError:
        raise
    except Exception as e:
        raise signing_failure(e, long_term=revocation is not None) from e
    return output.getvalue()


def add_document_timestamp(pdf: bytes, timestamper: TimeStamper, **options: object) -> bytes:
    """Synchronous :func:`async_add_document_timestamp`; must not be called from a coroutine."""
    return asyncio.run(async_add_document_timestamp(pdf, timestamper, **options))  # type: ignore[arg-type]


# -- helpers -------------------------------------------------------------------------------------


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _page_out_of_range(page: object, pages: int) -> AppearanceInvalid:
    return AppearanceInvalid(
        f"page {page!r} does not exist; the document has {pages} page(s)",
        detail_zh=f"第 {page!r} 页不存在；文档共 {pages} 页",
        pages=pages,
    )


def _display_name(certificate: asn1_x509.Certificate) -> str:
    """The common name, else the organisation, else the whole subject."""
    subject = certificate.subject.native
    for key in ("common_name", "organization_name"):
        value = subject.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value:
            return str(value[0])
    return certificate.subject.human_friendly


def default_digest(signer: Signer) -> str:
    """The digest pyHanko would pick for the signer's key (SHA-384 for P-384, else SHA-256)."""
    from pyhanko.sign.general import get_cms_hash_algo_for_mechanism

    try:
        return get_cms_hash_algo_for_mechanism(signer.get_signature_mechanism_for_digest(None))
    except Exception:
        return "sha256"

"""Verification reports for PDF signatures and detached CMS signatures.

A report describes every signature it finds; it does not stop at the first
bad one.  Functions raise only when there is nothing to report on: the
document cannot be read (:class:`PdfInvalid`, :class:`CMSInvalid` ...) or
carries no signature (:class:`NoSignature`).

Everything is decided offline from three sources: the trust roots passed in,
the data the document embeds (certificates in the CMS objects, the DSS), and
the optional revocation provider.  Certificates are validated at the time
of the signature timestamp when there is one ("status at signing"), else at
the validation time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.general import find_unique_cms_attribute
from pyhanko.sign.validation import (
    async_validate_detached_cms,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import (
    DocumentTimestampStatus,
    SignatureCoverageLevel,
    SignatureStatus,
)
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import InsufficientRevinfoError, RevokedError

from core.errors import HengxinError
from signing.context import CertificateLike, as_certificates, validation_context
from signing.errors import CMSInvalid, NoSignature, SigningError, SigningRequestInvalid
from signing.interfaces import RevocationInfo, RevocationProvider
from signing.pdf import DEFAULT_KEY_USAGE, PdfLimits, read_pdf

logger = logging.getLogger(__name__)

MAX_CMS_BYTES = 1024 * 1024


class Revocation(enum.StrEnum):
    """Revocation status of the signer certificate (and its CAs) at the time checked."""

    GOOD = "good"  # revocation data covers every certificate of the path, none revoked
    REVOKED = "revoked"  # the signer or one of its CAs was revoked at that time
    UNKNOWN = "unknown"  # no (or not enough) revocation data to say


@dataclasses.dataclass(frozen=True)
class CertificateSummary:
    """What a report says about one certificate."""

    subject: str
    issuer: str
    serial_number: str  # lower-case hex
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str  # fingerprint of the DER certificate, lower-case hex

    @classmethod
    def of(cls, certificate: asn1_x509.Certificate) -> CertificateSummary:
        validity = certificate["tbs_certificate"]["validity"]
        return cls(
            subject=certificate.subject.human_friendly,
            issuer=certificate.issuer.human_friendly,
            serial_number=format(certificate.serial_number, "x"),
            not_before=validity["not_before"].native,
            not_after=validity["not_after"].native,
            sha256=certificate.sha256.hex(),
        )


@dataclasses.dataclass(frozen=True)
class SignatureReport:
    """The verdict on one signature or document timestamp.

    ``kind`` is ``signature`` or ``document_timestamp``.  ``intact``: the
    signed data has not changed (digest matches); ``valid``: intact and the
    cryptographic signature verifies; ``trusted``: valid, and the signer
    chains to a trust root with the required key usage and is not known to
    be revoked.  ``chain`` runs from the trust root down to the signer when
    trusted, else lists the certificates the signature carries.
    ``signing_time`` is the time the signer claims, ``timestamp_time`` the
    signature timestamp's (for a document timestamp: its own time).
    ``revocation`` is the status at ``revocation_checked_at`` (the timestamp
    time when there is one, else the validation time).  ``level`` is the
    highest PAdES (PDF) or CAdES (CMS) baseline level the signature fully
    reaches: ``B-B``, ``B-T``, ``B-LT``, ``B-LTA`` or ``None``.  ``coverage``
    (``entire_file``, ``entire_revision``, ``partial``) and ``modification``
    (``none``, ``lta_updates``, ``form_filling``, ``annotations``, ``other``)
    come from pyHanko's incremental-update analysis; ``docmdp_ok`` whether the
    changes are allowed by the document's modification policy.
    ``problems`` lists what is wrong, in English, one line each.
    """

    index: int
    kind: str
    field_name: str | None
    intact: bool
    valid: bool
    trusted: bool
    signer: CertificateSummary | None
    chain: tuple[CertificateSummary, ...]
    signing_time: dt.datetime | None
    timestamp_time: dt.datetime | None
    timestamp_trusted: bool | None
    revocation: Revocation
    revoked_at: dt.datetime | None
    revocation_checked_at: dt.datetime
    level: str | None
    digest_algorithm: str | None
    coverage: str | None = None
    modification: str | None = None
    docmdp_ok: bool | None = None
    reason: str | None = None
    location: str | None = None
    contact: str | None = None
    problems: tuple[str, ...] = ()
    etsi_report: str | None = None

    @property
    def ok(self) -> bool:
        """Intact, valid, trusted, not revoked, and not changed beyond what the policy allows."""
        return (
            self.intact
            and self.valid
            and self.trusted
            and self.revocation is not Revocation.REVOKED
            and self.docmdp_ok is not False
        )


@dataclasses.dataclass(frozen=True)
class VerificationReport:
    """All signatures of one document, in the order they were applied."""

    document: str  # "pdf" or "cms"
    validation_time: dt.datetime
    signatures: tuple[SignatureReport, ...]

    @property
    def all_ok(self) -> bool:
        """Whether every signature and document timestamp is :attr:`SignatureReport.ok`."""
        return bool(self.signatures) and all(s.ok for s in self.signatures)


# -- shared pieces ------------------------------------------------------------------------------


def _utc(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    if value.tzinfo is None:
        raise SigningRequestInvalid("validation_time must be timezone-aware", detail_zh="验证时间必须带时区")
    return value.astimezone(dt.UTC)


def _signed_data_certificates(signed_data: cms.SignedData) -> list[asn1_x509.Certificate]:
    return [c.chosen for c in signed_data["certificates"] or () if c.name == "certificate"]


def _timestamp_token(signer_info: cms.SignerInfo) -> cms.SignedData | None:
    try:
        token = find_unique_cms_attribute(signer_info["unsigned_attrs"], "signature_time_stamp_token")
    except Exception:
        return None
    return token["content"]


def _ask(provider: RevocationProvider | None, certificates: Iterable[asn1_x509.Certificate]) -> RevocationInfo:
    if provider is None:
        return RevocationInfo()
    from signing.context import ask_revocation

    return ask_revocation(provider, as_certificates(certificates))


def _path_summaries(
    status: SignatureStatus, carried: Sequence[asn1_x509.Certificate]
) -> tuple[CertificateSummary, ...]:
    path = status.validation_path
    if path is not None:
        return tuple(CertificateSummary.of(c) for c in path.iter_certs(include_root=True))
    return tuple(CertificateSummary.of(c) for c in carried)


async def _revocation_state(
    certificate: asn1_x509.Certificate,
    *,
    others: Sequence[asn1_x509.Certificate],
    roots: Sequence[asn1_x509.Certificate],
    info: RevocationInfo,
    moment: dt.datetime,
    key_usage: set[str],
    extended_key_usage: set[str] | None = None,
) -> tuple[Revocation, dt.datetime | None]:
    """Whether revocation data covers the whole path of ``certificate`` at ``moment``, and what it says."""
    context = validation_context(
        roots, revocation=info, other_certificates=others, moment=moment,
        revocation_mode="require", retroactive_revinfo=True,
    )
    validator = CertificateValidator(certificate, intermediate_certs=list(others), validation_context=context)
    try:
        await validator.async_validate_usage(key_usage, extended_key_usage)
    except RevokedError as e:
        return Revocation.REVOKED, e.revocation_dt
    except InsufficientRevinfoError:
        return Revocation.UNKNOWN, None
    except Exception as e:
        logger.debug("revocation check did not complete: %r", e)
        return Revocation.UNKNOWN, None
    return Revocation.GOOD, None


def _status_problems(status: SignatureStatus, revocation: Revocation) -> list[str]:
    problems = []
    if not status.intact:
        problems.append("the signed data was modified: the digest does not match")
    elif not status.valid:
        problems.append("the cryptographic signature does not verify")
    if revocation is Revocation.REVOKED:
        problems.append("the signer certificate or one of its CAs is revoked")
    elif status.intact and status.valid and not status.trusted:
        indication = status.trust_problem_indic
        detail = f" ({getattr(indication, 'name', indication)!s})".lower() if indication is not None else ""
        problems.append(f"the signer certificate is not trusted{detail}")
    return problems


# -- PDF -----------------------------------------------------------------------------------------


def _embedded_material(handler: object) -> tuple[RevocationInfo, list[asn1_x509.Certificate]]:
    """The CRLs, OCSP responses and certificates in the document security store of ``handler``
    (a reader, or a historical view of one revision), if there is one."""
    from asn1crypto import crl as asn1_crl
    from asn1crypto import ocsp as asn1_ocsp
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    try:
        dss = DocumentSecurityStore.read_dss(handler)  # type: ignore[arg-type]
    except Exception:
        return RevocationInfo(), []
    crls, ocsps = [], []
    for reference in dss.crls:
        try:
            crls.append(asn1_crl.CertificateList.load(reference.get_object().data).dump())
        except Exception:
            logger.info("skipping an unreadable CRL in the DSS")
    for reference in dss.ocsps:
        try:
            ocsps.append(asn1_ocsp.OCSPResponse.load(reference.get_object().data).dump())
        except Exception:
            logger.info("skipping an unreadable OCSP response in the DSS")
    try:
        certificates = list(dss.load_certs())
    except Exception:
        certificates = []
    return RevocationInfo(crls=tuple(crls), ocsp_responses=tuple(ocsps)), certificates


LongTermCheck = Callable[[RevocationInfo, list[asn1_x509.Certificate]], Awaitable[bool]]

_COVERAGE = {
    SignatureCoverageLevel.ENTIRE_FILE: "entire_file",
    SignatureCoverageLevel.ENTIRE_REVISION: "entire_revision",
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: "partial",
    SignatureCoverageLevel.UNCLEAR: "partial",
}


def _modification(status: object) -> str | None:
    level = getattr(status, "modification_level", None)
    return level.name.lower() if level is not None else None


async def _verify_pdf_timestamp(
    index: int, embedded: EmbeddedPdfSignature, *, roots: list[asn1_x509.Certificate], embedded_info: RevocationInfo,
    dss_certificates: list[asn1_x509.Certificate], provider: RevocationProvider | None, validation_time: dt.datetime,
) -> tuple[SignatureReport, DocumentTimestampStatus]:
    carried = _signed_data_certificates(embedded.signed_data)
    info = embedded_info.merged(_ask(provider, carried))
    others = [*carried, *dss_certificates]
    context = validation_context(roots, revocation=info, other_certificates=others, moment=validation_time,
                                 retroactive_revinfo=True)
    status = await async_validate_pdf_timestamp(embedded, validation_context=context)
    revocation, revoked_at = (Revocation.UNKNOWN, None)
    if status.revoked:
        revocation, revoked_at = Revocation.REVOKED, status.revocation_details.revocation_date  # type: ignore[union-attr]
    elif status.trusted:
        revocation, revoked_at = await _revocation_state(
            status.signing_cert, others=others, roots=roots, info=info, moment=validation_time,
            key_usage=set(), extended_key_usage={"time_stamping"},
        )
    problems = _status_problems(status, revocation)
    report = SignatureReport(
        index=index,
        kind="document_timestamp",
        field_name=embedded.field_name,
        intact=status.intact,
        valid=bool(status.intact and status.valid),  # a signature over changed content is not valid
        trusted=status.trusted,
        signer=CertificateSummary.of(status.signing_cert),
        chain=_path_summaries(status, carried),
        signing_time=None,
        timestamp_time=status.timestamp,
        timestamp_trusted=status.trusted,
        revocation=revocation,
        revoked_at=revoked_at,
        revocation_checked_at=validation_time,
        level=None,
        digest_algorithm=status.md_algorithm,
        coverage=_COVERAGE.get(status.coverage) if status.coverage is not None else None,
        modification=_modification(status),
        docmdp_ok=status.docmdp_ok,
        problems=tuple(problems),
    )
    return report, status


async def _verify_pdf_signature(
    index: int, embedded: EmbeddedPdfSignature, *, roots: list[asn1_x509.Certificate], embedded_info: RevocationInfo,
    dss_certificates: list[asn1_x509.Certificate], provider: RevocationProvider | None, validation_time: dt.datetime,
    key_usage: set[str],
) -> tuple[SignatureReport, LongTermCheck | None]:
    carried = _signed_data_certificates(embedded.signed_data)
    token = _timestamp_token(embedded.signer_info)
    token_certificates = _signed_data_certificates(token) if token is not None else []
    token_time = None
    if token is not None:
        try:
            token_time = token["encap_content_info"]["content"].parsed["gen_time"].native
        except Exception:
            token_time = None
    moment = token_time or validation_time
    others = [*carried, *token_certificates, *dss_certificates]
    info = embedded_info.merged(_ask(provider, [*carried, *token_certificates]))
    context = validation_context(roots, revocation=info, other_certificates=others, moment=moment,
                                 retroactive_revinfo=True)
    status = await async_validate_pdf_signature(
        embedded,
        signer_validation_context=context,
        ts_validation_context=context,
        key_usage_settings=KeyUsageConstraints(key_usage=key_usage),
    )
    revocation, revoked_at = (Revocation.UNKNOWN, None)
    if status.revoked:
        revocation, revoked_at = Revocation.REVOKED, status.revocation_details.revocation_date  # type: ignore[union-attr]
    elif status.trusted:
        revocation, revoked_at = await _revocation_state(
            status.signing_cert, others=others, roots=roots, info=info, moment=moment, key_usage=key_usage,
        )
    timestamp = status.timestamp_validity
    timestamp_ok = bool(timestamp and timestamp.intact and timestamp.valid and timestamp.trusted)

    level = None
    long_term_check = None
    subfilter = embedded.sig_object.get("/SubFilter")
    if status.intact and status.valid and subfilter == SigSeedSubFilter.PADES.value:
        level = "B-B"
        if timestamp_ok:
            level = "B-T"
            assert timestamp is not None
            signing_cert, tsa_cert = status.signing_cert, timestamp.signing_cert

            async def long_term_check(material: RevocationInfo, certificates: list[asn1_x509.Certificate]) -> bool:
                # The embedded data alone (this DSS and the CMS certificates, no provider) must cover
                # the signer's path and the TSA's path at the timestamp time.
                lt_others = [*carried, *token_certificates, *certificates]
                signer_state, _ = await _revocation_state(
                    signing_cert, others=lt_others, roots=roots, info=material, moment=moment, key_usage=key_usage,
                )
                if signer_state is not Revocation.GOOD:
                    return False
                tsa_state, _ = await _revocation_state(
                    tsa_cert, others=lt_others, roots=roots, info=material, moment=moment,
                    key_usage=set(), extended_key_usage={"time_stamping"},
                )
                return tsa_state is Revocation.GOOD

    problems = _status_problems(status, revocation)
    if timestamp is not None and not timestamp_ok:
        problems.append("the signature timestamp does not validate")
    if status.docmdp_ok is False:
        problems.append("the document was modified after signing beyond what its policy allows")
    sig_object = embedded.sig_object
    report = SignatureReport(
        index=index,
        kind="signature",
        field_name=embedded.field_name,
        intact=status.intact,
        valid=bool(status.intact and status.valid),  # a signature over changed content is not valid
        trusted=status.trusted,
        signer=CertificateSummary.of(status.signing_cert),
        chain=_path_summaries(status, carried),
        signing_time=status.signer_reported_dt,
        timestamp_time=timestamp.timestamp if timestamp is not None else None,
        timestamp_trusted=timestamp_ok if timestamp is not None else None,
        revocation=revocation,
        revoked_at=revoked_at,
        revocation_checked_at=moment,
        level=level,
        digest_algorithm=status.md_algorithm,
        coverage=_COVERAGE.get(status.coverage) if status.coverage is not None else None,
        modification=_modification(status),
        docmdp_ok=status.docmdp_ok,
        reason=_text(sig_object.get("/Reason")),
        location=_text(sig_object.get("/Location")),
        contact=_text(sig_object.get("/ContactInfo")),
        problems=tuple(problems),
    )
    return report, long_term_check


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def _etsi_report(
    embedded: EmbeddedPdfSignature, roots: list[asn1_x509.Certificate], extra: RevocationInfo,
    validation_time: dt.datetime,
) -> str | None:
    """The ETSI TS 119 102-2 validation report from pyHanko's AdES validation, offline."""
    from asn1crypto import crl as asn1_crl
    from asn1crypto import ocsp as asn1_ocsp
    from pyhanko.sign.validation.ades import ades_lta_validation
    from pyhanko.sign.validation.policy_decl import (
        LocalKnowledge,
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko.sign.validation.report.tools import generate_report
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager
    from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

    knowledge = LocalKnowledge(
        known_crls=[CRLContainer(asn1_crl.CertificateList.load(d)) for d in extra.crls],
        known_ocsps=[c for d in extra.ocsp_responses for c in OCSPContainer.load_multi(asn1_ocsp.OCSPResponse.load(d))],
    )
    spec = PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=roots),
                revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
            local_knowledge=knowledge,
        )
    )
    timing = ValidationTimingInfo(
        validation_time=validation_time, best_signature_time=validation_time, point_in_time_validation=False
    )
    try:
        result = await ades_lta_validation(embedded, spec, timing_info=timing)
        return generate_report(embedded, result)
    except Exception:
        logger.exception("the ETSI validation report could not be produced")
        return None


async def async_verify_pdf(
    pdf: bytes,
    *,
    trust_roots: Sequence[CertificateLike],
    revocation: RevocationProvider | None = None,
    validation_time: dt.datetime | None = None,
    limits: PdfLimits = PdfLimits(),  # noqa: B008 - immutable
    key_usage: Iterable[str] = DEFAULT_KEY_USAGE,
    etsi_report: bool = False,
) -> VerificationReport:
    """Report on every signature and document timestamp in ``pdf``.

    ``trust_roots`` are the only anchors; ``revocation`` adds revocation data
    to what the document embeds; ``validation_time`` defaults to now.  With
    ``etsi_report`` each signature's report carries the ETSI TS 119 102-2 XML
    from pyHanko's AdES long-term validation (revocation data required).

    Raises :class:`PdfTooLarge`, :class:`PdfInvalid`, :class:`PdfEncrypted`,
    :class:`PdfTooManyPages`, :class:`NoSignature` and :class:`SigningRequestInvalid`.
    """
    now = _utc(validation_time)
    roots = as_certificates(trust_roots)
    if not roots:
        raise SigningRequestInvalid("at least one trust root is needed", detail_zh="至少需要一个信任根")
    usage = set(key_usage)
    reader = read_pdf(pdf, limits)
    try:
        embedded_signatures = list(reader.embedded_signatures)
    except HengxinError:
        raise
    except Exception as e:
        from signing.errors import PdfInvalid

        raise PdfInvalid("the signatures of the PDF cannot be read", detail_zh="无法读取 PDF 中的签名") from e
    if not embedded_signatures:
        raise NoSignature("the PDF has no signature", detail_zh="PDF 中没有签名")
    embedded_info, dss_certificates = _embedded_material(reader)

    reports: list[SignatureReport] = []
    long_term_checks: dict[int, LongTermCheck] = {}
    document_timestamps: list[tuple[int, int]] = []  # (index, revision) of valid, trusted document timestamps
    for index, embedded in enumerate(embedded_signatures):
        try:
            if embedded.sig_object_type == "/DocTimeStamp":
                report, _ = await _verify_pdf_timestamp(
                    index, embedded, roots=roots, embedded_info=embedded_info, dss_certificates=dss_certificates,
                    provider=revocation, validation_time=now,
                )
                if report.intact and report.valid and report.trusted:
                    document_timestamps.append((index, embedded.signed_revision))
            else:
                report, check = await _verify_pdf_signature(
                    index, embedded, roots=roots, embedded_info=embedded_info, dss_certificates=dss_certificates,
                    provider=revocation, validation_time=now, key_usage=usage,
                )
                if check is not None:
                    long_term_checks[index] = check
                if etsi_report:
                    extra = _ask(revocation, _signed_data_certificates(embedded.signed_data))
                    report = dataclasses.replace(report, etsi_report=await _etsi_report(embedded, roots, extra, now))
        except HengxinError:
            raise
        except Exception as e:
            logger.info("signature %d could not be evaluated: %r", index, e)
            report = _unreadable(index, embedded.field_name, now, "the signature cannot be parsed")
        reports.append(report)

    final = []
    for report in reports:
        check = long_term_checks.get(report.index)
        if check is not None:
            report = dataclasses.replace(report, level=await _long_term_level(
                reader, report.index, check, embedded_info, dss_certificates, document_timestamps
            ))
        final.append(report)
    return VerificationReport(document="pdf", validation_time=now, signatures=tuple(final))


async def _long_term_level(
    reader: PdfFileReader,
    index: int,
    check: LongTermCheck,
    embedded_info: RevocationInfo,
    dss_certificates: list[asn1_x509.Certificate],
    document_timestamps: list[tuple[int, int]],
) -> str:
    """B-T, B-LT (the DSS as it is now covers the signer and the TSA) or B-LTA (a later valid
    document timestamp covers a DSS that already did)."""
    if not await check(embedded_info, dss_certificates):
        return "B-T"
    for timestamp_index, revision in document_timestamps:
        if timestamp_index <= index:
            continue
        try:
            material, certificates = _embedded_material(reader.get_historical_resolver(revision))
        except Exception as e:
            logger.info("the DSS of revision %d cannot be read: %r", revision, e)
            continue
        if await check(material, certificates):
            return "B-LTA"
    return "B-LT"


def _unreadable(index: int, field_name: str | None, now: dt.datetime, problem: str) -> SignatureReport:
    return SignatureReport(
        index=index, kind="signature", field_name=field_name, intact=False, valid=False, trusted=False,
        signer=None, chain=(), signing_time=None, timestamp_time=None, timestamp_trusted=None,
        revocation=Revocation.UNKNOWN, revoked_at=None, revocation_checked_at=now, level=None,
        digest_algorithm=None, problems=(problem,),
    )


def verify_pdf(pdf: bytes, **options: object) -> VerificationReport:
    """Synchronous :func:`async_verify_pdf`; must not be called from a coroutine."""
    return asyncio.run(async_verify_pdf(pdf, **options))  # type: ignore[arg-type]


# -- CMS -----------------------------------------------------------------------------------------


def load_detached_cms(signature: bytes) -> cms.SignedData:
    """Parse a DER ``ContentInfo`` holding a detached ``SignedData`` with exactly one signer.

    Raises :class:`CMSInvalid` otherwise.
    """
    if not isinstance(signature, bytes | bytearray) or len(signature) > MAX_CMS_BYTES:
        raise CMSInvalid("the CMS signature is missing or larger than 1 MiB", detail_zh="CMS 签名缺失或超过 1 MiB")
    try:
        info = cms.ContentInfo.load(bytes(signature), strict=True)
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signed_data = info["content"]
        # Parse the parts validation walks now, so a malformed structure fails here
        # (``.native`` on the whole SignedData is far too slow with a timestamp token inside).
        for choice in signed_data["certificates"] or ():
            choice.chosen.subject  # noqa: B018
        for signer_info in signed_data["signer_infos"]:
            signer_info["sid"].native  # noqa: B018
            signer_info["signed_attrs"].native  # noqa: B018
            signer_info["signature"].native  # noqa: B018
    except Exception as e:
        raise CMSInvalid(
            "the data is not a DER CMS SignedData structure", detail_zh="数据不是 DER 编码的 CMS SignedData"
        ) from e
    if signed_data["encap_content_info"]["content"].native is not None:
        raise CMSInvalid("the CMS signature is not detached: it carries its content",
                         detail_zh="CMS 签名不是分离式签名：其中包含了内容")
    if len(signed_data["signer_infos"]) != 1:
        raise CMSInvalid("the CMS signature must have exactly one signer", detail_zh="CMS 签名必须只有一个签名者")
    return signed_data


async def async_verify_cms(
    signature: bytes,
    content: bytes,
    *,
    trust_roots: Sequence[CertificateLike],
    revocation: RevocationProvider | None = None,
    validation_time: dt.datetime | None = None,
    key_usage: Iterable[str] = DEFAULT_KEY_USAGE,
) -> VerificationReport:
    """Report on a detached CMS (CAdES) signature over ``content``.

    ``level`` in the report is the CAdES baseline level: ``B-B`` with the
    signing-certificate-v2 attribute, ``B-T`` with a trusted signature timestamp.
    Raises :class:`CMSInvalid` and :class:`SigningRequestInvalid`.
    """
    now = _utc(validation_time)
    roots = as_certificates(trust_roots)
    if not roots:
        raise SigningRequestInvalid("at least one trust root is needed", detail_zh="至少需要一个信任根")
    signed_data = load_detached_cms(signature)
    signer_info = signed_data["signer_infos"][0]
    usage = set(key_usage)
    carried = _signed_data_certificates(signed_data)
    token = _timestamp_token(signer_info)
    token_certificates = _signed_data_certificates(token) if token is not None else []
    token_time = None
    if token is not None:
        try:
            token_time = token["encap_content_info"]["content"].parsed["gen_time"].native
        except Exception:
            token_time = None
    moment = token_time or now
    others = [*carried, *token_certificates]
    info = _ask(revocation, others)
    context = validation_context(roots, revocation=info, other_certificates=others, moment=moment,
                                 retroactive_revinfo=True)
    try:
        status = await async_validate_detached_cms(
            bytes(content), signed_data, signer_validation_context=context, ts_validation_context=context,
            key_usage_settings=KeyUsageConstraints(key_usage=usage),
        )
    except HengxinError:
        raise
    except Exception as e:
        raise CMSInvalid("the CMS signature cannot be evaluated", detail_zh="无法验证 CMS 签名") from e
    revocation_state, revoked_at = (Revocation.UNKNOWN, None)
    if status.revoked:
        revocation_state, revoked_at = Revocation.REVOKED, status.revocation_details.revocation_date  # type: ignore[union-attr]
    elif status.trusted:
        revocation_state, revoked_at = await _revocation_state(
            status.signing_cert, others=others, roots=roots, info=info, moment=moment, key_usage=usage
        )
    timestamp = status.timestamp_validity
    timestamp_ok = bool(timestamp and timestamp.intact and timestamp.valid and timestamp.trusted)
    level = None
    if status.intact and status.valid and _has_signing_certificate_v2(signer_info):
        level = "B-T" if timestamp_ok else "B-B"
    problems = _status_problems(status, revocation_state)
    if timestamp is not None and not timestamp_ok:
        problems.append("the signature timestamp does not validate")
    report = SignatureReport(
        index=0,
        kind="signature",
        field_name=None,
        intact=status.intact,
        valid=bool(status.intact and status.valid),  # a signature over changed content is not valid
        trusted=status.trusted,
        signer=CertificateSummary.of(status.signing_cert),
        chain=_path_summaries(status, carried),
        signing_time=status.signer_reported_dt,
        timestamp_time=timestamp.timestamp if timestamp is not None else None,
        timestamp_trusted=timestamp_ok if timestamp is not None else None,
        revocation=revocation_state,
        revoked_at=revoked_at,
        revocation_checked_at=moment,
        level=level,
        digest_algorithm=status.md_algorithm,
        problems=tuple(problems),
    )
    return VerificationReport(document="cms", validation_time=now, signatures=(report,))


def _has_signing_certificate_v2(signer_info: cms.SignerInfo) -> bool:
    try:
        find_unique_cms_attribute(signer_info["signed_attrs"], "signing_certificate_v2")
    except Exception:
        return False
    return True


def verify_cms(signature: bytes, content: bytes, **options: object) -> VerificationReport:
    """Synchronous :func:`async_verify_cms`; must not be called from a coroutine."""
    return asyncio.run(async_verify_cms(signature, content, **options))  # type: ignore[arg-type]


def verify(
    document: bytes | tuple[bytes, bytes],
    *,
    trust_roots: Sequence[CertificateLike],
    revocation: RevocationProvider | None = None,
    validation_time: dt.datetime | None = None,
    **options: object,
) -> VerificationReport:
    """Verify a PDF (``document`` is its bytes) or a detached CMS signature (``(signature, content)``).

    Same errors as :func:`verify_pdf` and :func:`verify_cms`.
    """
    if isinstance(document, tuple):
        if len(document) != 2:
            raise SigningRequestInvalid("pass (signature, content) for a CMS signature",
                                        detail_zh="CMS 签名请传入（签名, 内容）")
        signature, content = document
        return verify_cms(signature, content, trust_roots=trust_roots, revocation=revocation,
                          validation_time=validation_time, **options)
    if not isinstance(document, bytes | bytearray):
        raise SigningError("expected the document as bytes", detail_zh="文档须为字节串")
    return verify_pdf(bytes(document), trust_roots=trust_roots, revocation=revocation,
                      validation_time=validation_time, **options)

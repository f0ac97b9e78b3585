"""PAdES and CAdES signatures made with a key-store signer and the in-process TSA, checked by pyHanko's
own validators (offline, from the embedded data only) and by our verification report."""

from __future__ import annotations

import asyncio
import datetime
import io
import time

import pytest
from lxml import etree
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.policy_decl import (
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager

from signing import (
    Revocation,
    VisibleSignature,
    add_document_timestamp,
    sign_cms_detached,
    sign_pdf,
    verify,
    verify_cms,
    verify_pdf,
)
from signing.errors import CertificateUnsuitable
from signing.interfaces import ProviderTimeStamper
from tests.fixtures.signing import PKIRevocation, SigningPKI

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]


@pytest.fixture(scope="module")
def signed(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper, revocation: PKIRevocation
) -> dict[str, bytes]:
    """The sample document signed once at every level."""
    return {
        level: sign_pdf(sample_pdf, signing_pki.person, level=level, timestamper=timestamper, revocation=revocation,
                        reason="同意发布", location="北京", contact="zhang.wei@example.gov.cn")
        for level in LEVELS
    }


def _offline_context(signing_pki: SigningPKI) -> ValidationContext:
    """Trust the root, fetch nothing, know nothing else: only what the file embeds counts."""
    return ValidationContext(trust_roots=[signing_pki.root], allow_fetching=False)


def _lta_spec(signing_pki: SigningPKI) -> PdfSignatureValidationSpec:
    return PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=[signing_pki.root]),
                revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
        )
    )


def test_b_lta_is_valid_trusted_and_ades_ok_for_pyhanko_offline(
    signing_pki: SigningPKI, signed: dict[str, bytes]
) -> None:
    reader = PdfFileReader(io.BytesIO(signed["B-LTA"]))
    signature, document_timestamp = reader.embedded_signatures
    status = validate_pdf_signature(signature, _offline_context(signing_pki))
    assert status.bottom_line, status.pretty_print_details()
    assert status.intact and status.valid and status.trusted
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert validate_pdf_timestamp(document_timestamp, _offline_context(signing_pki)).trusted

    result = asyncio.run(ades_lta_validation(signature, _lta_spec(signing_pki)))
    assert result.ades_subindic is AdESPassed.OK, result.failure_msg
    assert result.oldest_evidence_record_timestamp is not None


def test_b_lt_keeps_its_validation_data_in_the_signature_revision(
    signing_pki: SigningPKI, signed: dict[str, bytes]
) -> None:
    reader = PdfFileReader(io.BytesIO(signed["B-LT"]))
    assert "/DSS" in reader.root
    (signature,) = reader.embedded_signatures
    status = validate_pdf_signature(signature, _offline_context(signing_pki))
    assert status.bottom_line and status.coverage.name == "ENTIRE_FILE"


@pytest.mark.parametrize("level", LEVELS)
def test_the_report_names_the_level_reached_and_the_signer(
    signing_pki: SigningPKI, signed: dict[str, bytes], level: str
) -> None:
    report = verify_pdf(signed[level], trust_roots=[signing_pki.root])
    signature = report.signatures[0]
    assert signature.kind == "signature" and signature.ok
    assert signature.level == level
    assert "张伟" in signature.signer.subject
    assert [c.subject for c in signature.chain][0].startswith("Common Name: 恒信测试根 CA")
    assert signature.reason == "同意发布" and signature.location == "北京"
    assert signature.modification in ("none", "lta_updates")
    if level == "B-B":
        assert signature.timestamp_time is None and signature.timestamp_trusted is None
    else:
        assert signature.timestamp_trusted is True
        assert abs(signature.timestamp_time - signature.signing_time) < datetime.timedelta(seconds=5)
    # Without a provider only B-LT and B-LTA carry what is needed to establish revocation status.
    expected = Revocation.GOOD if level in ("B-LT", "B-LTA") else Revocation.UNKNOWN
    assert signature.revocation is expected
    if level == "B-LTA":
        assert report.signatures[1].kind == "document_timestamp" and report.signatures[1].ok


def test_a_revocation_provider_establishes_status_for_short_term_levels(
    signing_pki: SigningPKI, signed: dict[str, bytes], revocation: PKIRevocation
) -> None:
    report = verify_pdf(signed["B-T"], trust_roots=[signing_pki.root], revocation=revocation)
    assert report.signatures[0].revocation is Revocation.GOOD
    assert report.signatures[0].level == "B-T"  # provider data is not embedded data


def test_three_signatures_on_one_document_all_stay_valid(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper, revocation: PKIRevocation
) -> None:
    first = sign_pdf(sample_pdf, signing_pki.person, level="B-T", timestamper=timestamper, reason="拟稿")
    second = sign_pdf(first, signing_pki.seal, level="B-LT", timestamper=timestamper, revocation=revocation,
                      reason="盖章")
    third = sign_pdf(second, signing_pki.person, level="B-LTA", timestamper=timestamper, revocation=revocation,
                     reason="签发")
    assert third.startswith(second) and second.startswith(first)
    reader = PdfFileReader(io.BytesIO(third))
    statuses = [
        validate_pdf_signature(s, _offline_context(signing_pki))
        for s in reader.embedded_signatures
        if s.sig_object_type == "/Sig"
    ]
    assert len(statuses) == 3 and all(s.bottom_line for s in statuses)
    report = verify_pdf(third, trust_roots=[signing_pki.root])
    assert report.all_ok
    assert [s.kind for s in report.signatures] == ["signature"] * 3 + ["document_timestamp"]
    assert [s.modification for s in report.signatures[:3]] == ["form_filling", "form_filling", "lta_updates"]
    assert [s.reason for s in report.signatures[:3]] == ["拟稿", "盖章", "签发"]


def test_a_changed_byte_in_the_signed_range_breaks_the_signature(
    signing_pki: SigningPKI, signed: dict[str, bytes]
) -> None:
    for level in ("B-B", "B-LTA"):
        data = bytearray(signed[level])
        offset = data.index(b"Hengxin test document")
        data[offset] ^= 0x01
        reader = PdfFileReader(io.BytesIO(bytes(data)))
        status = validate_pdf_signature(reader.embedded_signatures[0], _offline_context(signing_pki))
        assert not status.intact and not status.bottom_line
        report = verify_pdf(bytes(data), trust_roots=[signing_pki.root])
        assert not report.signatures[0].intact and not report.all_ok
        assert report.signatures[0].level is None
        assert "digest does not match" in report.signatures[0].problems[0]


def test_an_untrusted_root_gives_a_valid_but_untrusted_report(
    signing_pki: SigningPKI, signed: dict[str, bytes]
) -> None:
    other_root = signing_pki.tsa_issued.certificate  # any certificate that is not our root
    report = verify_pdf(signed["B-T"], trust_roots=[other_root])
    signature = report.signatures[0]
    assert signature.intact and signature.valid and not signature.trusted and not signature.ok
    assert any("not trusted" in p for p in signature.problems)


def test_a_signer_revoked_before_verification_but_after_signing_was_good_at_signing(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper
) -> None:
    signer, issued = signing_pki.signer("person-sign")
    signed = sign_pdf(sample_pdf, signer, level="B-T", timestamper=timestamper)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)
    revoked_later = signing_pki.revocation(revoked={issued.serial: later})
    report = verify_pdf(signed, trust_roots=[signing_pki.root], revocation=revoked_later)
    assert report.signatures[0].revocation is Revocation.GOOD
    assert report.signatures[0].trusted


def test_a_signer_revoked_before_signing_is_reported_revoked_and_cannot_make_b_lt(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper
) -> None:
    signer, issued = signing_pki.signer("person-sign")
    earlier = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(minutes=10)
    revoked = signing_pki.revocation(revoked={issued.serial: earlier})
    with pytest.raises(CertificateUnsuitable):
        sign_pdf(sample_pdf, signer, level="B-LT", timestamper=timestamper, revocation=revoked)
    signed = sign_pdf(sample_pdf, signer, level="B-T", timestamper=timestamper)
    report = verify_pdf(signed, trust_roots=[signing_pki.root], revocation=revoked)
    signature = report.signatures[0]
    assert signature.revocation is Revocation.REVOKED and not signature.trusted and not signature.ok
    assert signature.revoked_at == earlier


def test_the_etsi_report_is_xml_with_a_passed_indication(signing_pki: SigningPKI, signed: dict[str, bytes]) -> None:
    report = verify_pdf(signed["B-LTA"], trust_roots=[signing_pki.root], etsi_report=True)
    xml = report.signatures[0].etsi_report
    assert xml is not None
    root = etree.fromstring(xml.encode())
    assert etree.QName(root).localname == "ValidationReport"
    indications = [e.text for e in root.iter() if etree.QName(e).localname == "MainIndication"]
    assert indications and indications[0].endswith("total-passed")


def test_a_document_timestamp_is_reported_and_trusted(
    signing_pki: SigningPKI, signed: dict[str, bytes], timestamper: ProviderTimeStamper, revocation: PKIRevocation
) -> None:
    stamped = add_document_timestamp(signed["B-T"], timestamper, revocation=revocation,
                                     trust_roots=[signing_pki.root], field_name="归档时间戳")
    report = verify_pdf(stamped, trust_roots=[signing_pki.root])
    signature, document_timestamp = report.signatures
    assert document_timestamp.kind == "document_timestamp" and document_timestamp.ok
    assert document_timestamp.field_name == "归档时间戳"
    assert "恒信时间戳服务" in document_timestamp.signer.subject
    # Its validation data was added after the timestamp, so the timestamp does not cover it: B-LT, not B-LTA.
    assert signature.level == "B-LT" and signature.ok


def test_a_visible_signature_with_chinese_text_and_a_seal_verifies(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper, seal_png: bytes
) -> None:
    visible = VisibleSignature(page=1, rect=(350, 80, 560, 180), text="{signer}\n{time}\n理由：{reason}",
                               image_png=seal_png)
    signed = sign_pdf(sample_pdf, signing_pki.seal, level="B-T", timestamper=timestamper, visible=visible,
                      reason="同意")
    report = verify_pdf(signed, trust_roots=[signing_pki.root])
    assert report.all_ok and report.signatures[0].level == "B-T"


@pytest.mark.parametrize("level", ["B-B", "B-T"])
def test_cms_detached_signatures_verify_and_report_their_level(
    signing_pki: SigningPKI, timestamper: ProviderTimeStamper, revocation: PKIRevocation, level: str
) -> None:
    content = "关于印发《电子公文管理办法》的通知".encode() * 100
    p7s = sign_cms_detached(content, signing_pki.person, level=level, timestamper=timestamper)
    report = verify((p7s, content), trust_roots=[signing_pki.root], revocation=revocation)
    assert report.document == "cms" and report.all_ok
    assert report.signatures[0].level == level
    assert report.signatures[0].revocation is Revocation.GOOD
    broken = verify_cms(p7s, content + b"!", trust_roots=[signing_pki.root])
    assert not broken.signatures[0].intact and not broken.all_ok


@pytest.fixture(scope="module")
def seal_png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 6, 154, 154), outline=(210, 20, 20, 255), width=8)
    draw.regular_polygon((80, 80, 30), 5, fill=(210, 20, 20, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_in_process_throughput_figures(signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Not an assertion: prints B-B and B-T signatures per second of a one-page PDF on this machine."""
    figures = {}
    for level in ("B-B", "B-T"):
        sign_pdf(sample_pdf, signing_pki.person, level=level, timestamper=timestamper)  # warm up
        count, start = 0, time.perf_counter()
        while count < 200 and time.perf_counter() - start < 2.0:
            sign_pdf(sample_pdf, signing_pki.person, level=level, timestamper=timestamper)
            count += 1
        figures[level] = count / (time.perf_counter() - start)
    with capsys.disabled():
        print("\nin-process, one thread: " + ", ".join(f"{k} {v:.0f}/s" for k, v in figures.items()))
    assert all(v > 0 for v in figures.values())

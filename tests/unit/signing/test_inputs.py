"""What sign_pdf refuses, and with which code: documents, limits, levels, certificates, appearances."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signing import PdfLimits, VisibleSignature, sign_cms_detached, sign_pdf, verify_cms, verify_pdf
from signing.appearance import _template
from signing.errors import (
    AppearanceInvalid,
    CertificateUnsuitable,
    CMSInvalid,
    ContentTooLarge,
    FieldConflict,
    FontUnavailable,
    LevelUnavailable,
    NoSignature,
    PdfEncrypted,
    PdfInvalid,
    PdfTooLarge,
    PdfTooManyPages,
    SigningError,
    SigningRequestInvalid,
    TimestampFailed,
)
from signing.fonts import SignatureFont, load_font
from signing.interfaces import ProviderTimeStamper
from tests.fixtures.signing import SigningPKI, minimal_pdf


def _encrypted_pdf() -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    writer.insert_page(
        generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Page"),
                generic.NameObject("/MediaBox"): generic.ArrayObject(
                    [generic.NumberObject(n) for n in (0, 0, 595, 842)]
                ),
            }
        )
    )
    writer.encrypt("owner secret", "user secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- documents ----------------------------------------------------------------------------------


def test_a_document_over_the_size_limit_is_refused_before_parsing(signing_pki: SigningPKI, sample_pdf: bytes) -> None:
    with pytest.raises(PdfTooLarge) as caught:
        sign_pdf(sample_pdf, signing_pki.person, level="B-B", limits=PdfLimits(max_bytes=len(sample_pdf) - 1))
    assert caught.value.code == "signing.pdf_too_large"
    assert caught.value.extra["limit"] == len(sample_pdf) - 1


def test_a_document_with_more_pages_than_allowed_is_refused(signing_pki: SigningPKI) -> None:
    with pytest.raises(PdfTooManyPages) as caught:
        sign_pdf(minimal_pdf(pages=3), signing_pki.person, level="B-B", limits=PdfLimits(max_pages=2))
    assert caught.value.code == "signing.pdf_too_many_pages"


def test_an_encrypted_pdf_is_refused_for_signing_and_verification(signing_pki: SigningPKI) -> None:
    encrypted = _encrypted_pdf()
    with pytest.raises(PdfEncrypted) as caught:
        sign_pdf(encrypted, signing_pki.person, level="B-B")
    assert caught.value.code == "signing.pdf_encrypted"
    with pytest.raises(PdfEncrypted):
        verify_pdf(encrypted, trust_roots=[signing_pki.root])


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", b"%PDF-1.7\n", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF"],
)
def test_data_that_is_not_a_readable_pdf_is_pdf_invalid(signing_pki: SigningPKI, data: bytes) -> None:
    with pytest.raises(PdfInvalid) as caught:
        sign_pdf(data, signing_pki.person, level="B-B")
    assert caught.value.code == "signing.pdf_invalid"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_escape_as_anything_but_a_signing_error(signing_pki: SigningPKI, data: bytes) -> None:
    for candidate in (data, b"%PDF-1.4\n" + data):
        try:
            sign_pdf(candidate, signing_pki.person, level="B-B")
        except SigningError as e:
            assert e.code in ("signing.pdf_invalid", "signing.pdf_encrypted"), e.code


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=10_000), flip=st.integers(min_value=0, max_value=10_000))
def test_truncated_or_damaged_pdfs_are_signed_or_refused_as_pdf_invalid(
    signing_pki: SigningPKI, sample_pdf: bytes, cut: int, flip: int
) -> None:
    truncated = sample_pdf[: len(sample_pdf) - cut % len(sample_pdf)]
    damaged = bytearray(sample_pdf)
    damaged[flip % len(damaged)] ^= 0x5A
    for candidate in (truncated, bytes(damaged)):
        try:
            sign_pdf(candidate, signing_pki.person, level="B-B")
        except SigningError as e:
            assert e.code == "signing.pdf_invalid", e.code
        try:
            verify_pdf(candidate, trust_roots=[signing_pki.root])
        except SigningError as e:
            assert e.code in ("signing.pdf_invalid", "signing.no_signature"), e.code


def test_a_pdf_without_signatures_has_nothing_to_verify(signing_pki: SigningPKI, sample_pdf: bytes) -> None:
    with pytest.raises(NoSignature) as caught:
        verify_pdf(sample_pdf, trust_roots=[signing_pki.root])
    assert caught.value.code == "signing.no_signature"


# -- requests -----------------------------------------------------------------------------------


def test_an_unknown_level_is_a_request_error(signing_pki: SigningPKI, sample_pdf: bytes) -> None:
    with pytest.raises(SigningRequestInvalid) as caught:
        sign_pdf(sample_pdf, signing_pki.person, level="B-X")
    assert caught.value.code == "signing.request_invalid"


def test_b_t_without_a_timestamper_and_b_lt_without_revocation_are_unavailable(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper
) -> None:
    with pytest.raises(LevelUnavailable) as caught:
        sign_pdf(sample_pdf, signing_pki.person, level="B-T")
    assert caught.value.code == "signing.level_unavailable"
    with pytest.raises(LevelUnavailable):
        sign_pdf(sample_pdf, signing_pki.person, level="B-LT", timestamper=timestamper)


def test_b_lt_is_unavailable_when_the_tsa_certificate_has_no_revocation_information(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper
) -> None:
    partial = signing_pki.revocation(skip={signing_pki.tsa_issued.serial})
    with pytest.raises(LevelUnavailable) as caught:
        sign_pdf(sample_pdf, signing_pki.person, level="B-LT", timestamper=timestamper, revocation=partial)
    assert caught.value.code == "signing.level_unavailable"


def test_b_lt_is_unavailable_when_the_provider_knows_nothing(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper
) -> None:
    empty = signing_pki.revocation(crls=False, ocsp=False)
    with pytest.raises(LevelUnavailable):
        sign_pdf(sample_pdf, signing_pki.person, level="B-LTA", timestamper=timestamper, revocation=empty)


def test_a_certificate_without_non_repudiation_cannot_sign_by_default(
    signing_pki: SigningPKI, sample_pdf: bytes
) -> None:
    with pytest.raises(CertificateUnsuitable) as caught:
        sign_pdf(sample_pdf, signing_pki.auth_only, level="B-B")
    assert caught.value.code == "signing.certificate_unsuitable"
    assert caught.value.extra["missing_key_usage"] == ["non_repudiation"]
    signed = sign_pdf(sample_pdf, signing_pki.auth_only, level="B-B", key_usage={"digital_signature"})
    assert signed.startswith(sample_pdf)


def test_signing_an_already_signed_field_is_a_conflict(signing_pki: SigningPKI, sample_pdf: bytes) -> None:
    signed = sign_pdf(sample_pdf, signing_pki.person, level="B-B", field_name="审批")
    with pytest.raises(FieldConflict) as caught:
        sign_pdf(signed, signing_pki.seal, level="B-B", field_name="审批")
    assert caught.value.code == "signing.field_conflict"


@pytest.mark.parametrize("name", ["", "a.b", "x" * 101, "tab\there"])
def test_malformed_field_names_are_refused(signing_pki: SigningPKI, sample_pdf: bytes, name: str) -> None:
    with pytest.raises(SigningRequestInvalid):
        sign_pdf(sample_pdf, signing_pki.person, level="B-B", field_name=name)


def test_a_refusing_tsa_is_timestamp_failed(signing_pki: SigningPKI, sample_pdf: bytes) -> None:
    from timestamp.tsa import Failure

    refusing = ProviderTimeStamper(lambda request: signing_pki.tsa.reject(Failure.SYSTEM_FAILURE, "down").der)
    with pytest.raises(TimestampFailed) as caught:
        sign_pdf(sample_pdf, signing_pki.person, level="B-T", timestamper=refusing)
    assert caught.value.code == "signing.timestamp_failed"


def test_a_tsa_that_crashes_or_answers_garbage_is_timestamp_failed(signing_pki: SigningPKI, sample_pdf: bytes) -> None:
    def crash(request: bytes) -> bytes:
        raise ConnectionError("gone")

    for stamper in (ProviderTimeStamper(crash), ProviderTimeStamper(lambda request: b"\x30\x03garbage")):
        with pytest.raises(TimestampFailed):
            sign_pdf(sample_pdf, signing_pki.person, level="B-T", timestamper=stamper)


# -- appearance -----------------------------------------------------------------------------------


def test_a_page_outside_the_document_is_an_appearance_error(signing_pki: SigningPKI, sample_pdf: bytes) -> None:
    for page in (0, 2):
        with pytest.raises(AppearanceInvalid) as caught:
            sign_pdf(sample_pdf, signing_pki.person, level="B-B",
                     visible=VisibleSignature(page=page, rect=(10, 10, 100, 60)))
        assert caught.value.code == "signing.appearance_invalid"


@pytest.mark.parametrize("rect", [(10, 10, 10, 60), (0, 0, float("nan"), 5), (0, 0, 1e9, 5)])
def test_rectangles_without_area_or_out_of_range_are_refused(
    signing_pki: SigningPKI, sample_pdf: bytes, rect: tuple[float, float, float, float]
) -> None:
    with pytest.raises(AppearanceInvalid):
        sign_pdf(sample_pdf, signing_pki.person, level="B-B", visible=VisibleSignature(page=1, rect=rect))


@pytest.mark.parametrize("image", [b"GIF89a....", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_a_seal_image_that_is_not_a_readable_png_is_refused(
    signing_pki: SigningPKI, sample_pdf: bytes, image: bytes
) -> None:
    with pytest.raises(AppearanceInvalid):
        sign_pdf(sample_pdf, signing_pki.person, level="B-B",
                 visible=VisibleSignature(page=1, rect=(10, 10, 100, 60), image_png=image))


def test_a_truetype_collection_is_refused_with_a_hint(tmp_path: Path) -> None:
    collection = tmp_path / "NotoSansCJK-Regular.ttc"
    collection.write_bytes(b"ttcf" + b"\x00" * 64)
    with pytest.raises(FontUnavailable) as caught:
        load_font(collection)
    assert caught.value.code == "signing.font_unavailable"
    assert ".ttc" in caught.value.detail and "gbsn00lp" in caught.value.detail
    with pytest.raises(FontUnavailable):
        load_font(tmp_path / "missing.ttf")


def test_the_default_font_is_the_single_face_arphic_font() -> None:
    font = load_font()
    assert isinstance(font, SignatureFont)
    assert font.path.name == "gbsn00lp.ttf"
    assert load_font() is font  # read once, kept


def test_template_placeholders_are_replaced_and_other_percent_signs_survive() -> None:
    template = _template("签名人 {signer} 100% {time} {unknown}")
    assert template % {"signer": "张伟", "time": "T"} == "签名人 张伟 100% T {unknown}"


# -- CMS ------------------------------------------------------------------------------------------


def test_cms_levels_above_b_t_and_oversized_content_are_refused(signing_pki: SigningPKI) -> None:
    with pytest.raises(SigningRequestInvalid):
        sign_cms_detached(b"data", signing_pki.person, level="B-LT")
    with pytest.raises(ContentTooLarge) as caught:
        sign_cms_detached(b"12345", signing_pki.person, level="B-B", max_bytes=4)
    assert caught.value.code == "signing.content_too_large"
    with pytest.raises(LevelUnavailable):
        sign_cms_detached(b"data", signing_pki.person, level="B-T")


@pytest.mark.parametrize("blob", [b"", b"\x30\x00", b"not der at all", b"\x30\x82\xff\xff"])
def test_unparseable_cms_is_cms_invalid(signing_pki: SigningPKI, blob: bytes) -> None:
    with pytest.raises(CMSInvalid) as caught:
        verify_cms(blob, b"content", trust_roots=[signing_pki.root])
    assert caught.value.code == "signing.cms_invalid"


def test_an_attached_cms_signature_is_refused(signing_pki: SigningPKI) -> None:
    import asyncio

    attached = asyncio.run(
        signing_pki.person.async_sign_general_data(b"content", "sha256", detached=False, use_cades=True)
    ).dump()
    with pytest.raises(CMSInvalid):
        verify_cms(attached, b"content", trust_roots=[signing_pki.root])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512))
def test_random_cms_bytes_are_cms_invalid(signing_pki: SigningPKI, data: bytes) -> None:
    with pytest.raises(CMSInvalid):
        verify_cms(data, b"content", trust_roots=[signing_pki.root])

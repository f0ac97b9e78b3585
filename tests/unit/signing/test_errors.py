"""The signing error hierarchy: stable codes, titles in English and Chinese."""

from __future__ import annotations

import inspect

import signing.errors as errors
from core.errors import Category, HengxinError


def _error_classes() -> list[type[errors.SigningError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.SigningError) and cls.__module__ == errors.__name__
    ]


def test_every_signing_error_has_a_signing_code_and_both_titles() -> None:
    classes = _error_classes()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert issubclass(cls, HengxinError)
        assert cls.code.startswith("signing."), cls
        assert cls.title_en and cls.title_zh and cls.title_en != cls.title_zh, cls
        assert any("\u4e00" <= ch <= "\u9fff" for ch in cls.title_zh), cls


def test_the_codes_the_api_relies_on_exist_with_their_categories() -> None:
    expected = {
        "signing.error": Category.INTERNAL,
        "signing.pdf_invalid": Category.INVALID,
        "signing.pdf_encrypted": Category.INVALID,
        "signing.pdf_too_large": Category.TOO_LARGE,
        "signing.pdf_too_many_pages": Category.TOO_LARGE,
        "signing.content_too_large": Category.TOO_LARGE,
        "signing.cms_invalid": Category.INVALID,
        "signing.level_unavailable": Category.CONFLICT,
        "signing.timestamp_failed": Category.UNAVAILABLE,
        "signing.certificate_unsuitable": Category.CONFLICT,
        "signing.field_conflict": Category.CONFLICT,
        "signing.appearance_invalid": Category.INVALID,
        "signing.font_unavailable": Category.CONFIGURATION,
        "signing.request_invalid": Category.INVALID,
        "signing.no_signature": Category.INVALID,
    }
    found = {cls.code: cls.category for cls in _error_classes()}
    assert found == expected


def test_detail_falls_back_to_the_title_and_chinese_detail_is_served_to_chinese_clients() -> None:
    error = errors.PdfEncrypted(detail_zh="PDF 已加密")
    assert error.detail == "Encrypted PDF documents are not accepted"
    assert error.localized_detail("zh-CN") == "PDF 已加密"
    assert error.title("zh") == "不接受加密的 PDF 文档"

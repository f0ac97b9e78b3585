"""The directory package's errors: codes, categories, hierarchy and bilingual titles."""

from __future__ import annotations

import pytest

from core.errors import Category, HengxinError
from directory import errors


def test_root_and_ldap_leaves_have_stable_codes_and_categories() -> None:
    assert errors.DirectoryError.code == "directory.error"
    assert issubclass(errors.DirectoryError, HengxinError)
    expected = {
        errors.LDAPError: ("directory.ldap_error", Category.INTERNAL),
        errors.LDAPUnavailable: ("directory.ldap_unavailable", Category.UNAVAILABLE),
        errors.LDAPInvalidCredentials: ("directory.ldap_invalid_credentials", Category.UNAUTHENTICATED),
        errors.LDAPNotFound: ("directory.ldap_not_found", Category.NOT_FOUND),
        errors.LDAPInsufficientAccess: ("directory.ldap_insufficient_access", Category.CONFIGURATION),
        errors.LDAPConfigurationError: ("directory.ldap_configuration", Category.CONFIGURATION),
        errors.InvalidPublishedValue: ("directory.invalid_published_value", Category.INVALID),
    }
    for cls, (code, category) in expected.items():
        assert (cls.code, cls.category) == (code, category)
        assert issubclass(cls, errors.DirectoryError)


@pytest.mark.parametrize(
    "cls",
    [
        errors.LDAPUnavailable,
        errors.LDAPInvalidCredentials,
        errors.LDAPNotFound,
        errors.LDAPInsufficientAccess,
        errors.LDAPConfigurationError,
    ],
)
def test_every_adapter_error_is_caught_by_ldap_error(cls: type[errors.LDAPError]) -> None:
    with pytest.raises(errors.LDAPError):
        raise cls()


def test_titles_exist_in_english_and_chinese() -> None:
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.DirectoryError):
            assert cls.title_en and cls.title_zh
            assert cls.title_zh != cls.title_en

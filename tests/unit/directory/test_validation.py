"""Checks and normal forms of directory values."""

from __future__ import annotations

import pytest

from directory.service_errors import (
    FederationNotConfigured,
    InvalidDirectoryValue,
    InvalidEmail,
    InvalidLogin,
    InvalidPhone,
    UnknownPermission,
)
from directory.validation import (
    auth_source,
    department_code,
    email_address,
    group_name,
    normalize_login,
    permission_name,
    phone_number,
    text_value,
)


def test_logins_are_lower_case_ascii() -> None:
    assert normalize_login(" ZhangWei ") == "zhangwei"
    assert normalize_login("zhang.wei@czj") == "zhang.wei@czj"
    for bad in ("", "张伟", "-lead", "has space", "x" * 101):
        with pytest.raises(InvalidLogin) as caught:
            normalize_login(bad)
        assert caught.value.code == "directory.invalid_login"


@pytest.mark.parametrize(
    "address",
    ["zhangwei@czj.gov.example", "li@例子.中国", "王芳@例子.中国", "first.last+tag@sub.example.org"],
)
def test_valid_email_addresses(address: str) -> None:
    assert email_address(f"  {address} ") == address


@pytest.mark.parametrize(
    "address",
    [
        "plain",
        "a@b",
        "@example.org",
        "a@@example.org",
        "a b@example.org",
        ".a@example.org",
        "a..b@example.org",
        "a@-bad-.example",
        "a@exa_mple.org",
    ],
)
def test_invalid_email_addresses(address: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        email_address(address)
    assert caught.value.code == "directory.invalid_email" and caught.value.extra["field"] == "email"


def test_blank_optional_values_are_none() -> None:
    assert email_address("  ") is None and phone_number("") is None


def test_phone_numbers() -> None:
    assert phone_number("+86 (10) 6512-3456") == "+86 (10) 6512-3456"
    for bad in ("12", "call me", "+86 10 6512 3456 转 801"):
        with pytest.raises(InvalidPhone):
            phone_number(bad)


def test_names_in_any_script_without_control_characters() -> None:
    assert text_value(" 东城县人民政府 ", "name", max_length=200) == "东城县人民政府"
    assert group_name("预算编制组") == "预算编制组"
    for bad in ("", "   ", "a\tb", "zero\u200bwidth"):
        with pytest.raises(InvalidDirectoryValue):
            text_value(bad, "name", max_length=200)
    with pytest.raises(InvalidDirectoryValue):
        group_name("a/b")
    with pytest.raises(InvalidDirectoryValue):
        department_code("财政局")


def test_permission_names_and_auth_sources() -> None:
    assert permission_name("directory.read") == "directory.read"
    assert permission_name("*") == "*"
    assert permission_name("ca.*") == "ca.*"
    with pytest.raises(UnknownPermission):
        permission_name("Directory Read")
    assert auth_source("local", set()) == "local"
    assert auth_source("ldap:partner", {"partner"}) == "ldap:partner"
    with pytest.raises(FederationNotConfigured):
        auth_source("ldap:other", {"partner"})

"""Checks and normal forms for the values the directory stores.

Each function returns the value in its stored form or raises an
``InvalidDirectoryValue`` leaf naming the field.  Display names, department
and group names may be in any script (张伟, 财政局); logins, department codes
and role names are ASCII because they appear in URLs, LDAP DNs and scripts.
"""

from __future__ import annotations

import re
import unicodedata

from directory.service_errors import (
    FederationNotConfigured,
    InvalidDirectoryValue,
    InvalidEmail,
    InvalidLogin,
    InvalidPhone,
    UnknownPermission,
)

_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,99}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ROLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PERMISSION = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?)$")
_PHONE = re.compile(r"^[0-9+() .-]{3,40}$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_FEDERATION = re.compile(r"^ldap:[a-z0-9][a-z0-9_-]{0,31}$")


def _has_control(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in value)


def normalize_login(value: str) -> str:
    """The stored form of a login: lower-case ASCII letters, digits and ``. _ @ -``, up to 100 characters.

    Logins are compared case-insensitively (as LDAP compares ``uid``), so
    they are stored in lower case.  Raises :class:`InvalidLogin`.
    """
    login = value.strip().lower()
    if not _LOGIN.match(login):
        raise InvalidLogin(
            f"login {value!r} is not valid: use 1-100 ASCII letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit",
            detail_zh="登录名无效：只能使用 1-100 个 ASCII 字母、数字及 . _ @ -，且以字母或数字开头",
            field="login",
        )
    return login


def text_value(value: str, field: str, *, max_length: int) -> str:
    """A free text value in any script: stripped, non-empty, no control characters."""
    cleaned = value.strip()
    if not cleaned or len(cleaned) > max_length or _has_control(cleaned):
        raise InvalidDirectoryValue(
            f"{field} must be 1-{max_length} characters without control characters",
            detail_zh=f"{field} 须为 1-{max_length} 个字符且不含控制字符",
            field=field,
        )
    return cleaned


def optional_text(value: str | None, field: str, *, max_length: int) -> str | None:
    """Like :func:`text_value`; None or blank means no value."""
    if value is None or not value.strip():
        return None
    return text_value(value, field, max_length=max_length)


def department_code(value: str) -> str:
    if not _CODE.match(value):
        raise InvalidDirectoryValue(
            f"department code {value!r} is not valid: use 1-64 ASCII letters, digits, '.', '_' or '-'",
            detail_zh="部门代码无效：只能使用 1-64 个 ASCII 字母、数字及 . _ -",
            field="code",
        )
    return value


def group_name(value: str) -> str:
    name = text_value(value, "name", max_length=100)
    if "/" in name:
        raise InvalidDirectoryValue("a group name must not contain '/'", detail_zh="组名不能包含 '/'", field="name")
    return name


def role_name(value: str) -> str:
    if not _ROLE.match(value):
        raise InvalidDirectoryValue(
            f"role name {value!r} is not valid: use 1-64 lower-case ASCII letters, digits, '.', '_' or '-'",
            detail_zh="角色名无效：只能使用 1-64 个小写 ASCII 字母、数字及 . _ -",
            field="name",
        )
    return value


def permission_name(value: str) -> str:
    """A permission as roles hold it: a dotted name (``directory.read``), ``area.*`` or ``*``."""
    if not _PERMISSION.match(value) or len(value) > 100:
        raise UnknownPermission(f"{value!r} is not a permission name", detail_zh="权限名无效", field="permissions")
    return value


def email_address(value: str | None) -> str | None:
    """A plausible mail address (internationalised ones accepted), or None for blank.

    The domain must be IDNA-encodable with at least two labels; the local part
    may be in any script (RFC 6531).  Raises :class:`InvalidEmail`.
    """
    if value is None or not value.strip():
        return None
    address = value.strip()
    local, at, domain = address.rpartition("@")

    def invalid() -> InvalidEmail:
        return InvalidEmail(
            f"{address!r} is not a valid email address", detail_zh=f"{address!r} 不是有效的电子邮件地址", field="email"
        )

    if not at or not local or not domain or len(address) > 254 or len(local) > 64:
        raise invalid()
    if "@" in local or _has_control(address) or any(c.isspace() for c in address):
        raise invalid()
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise invalid()
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise invalid() from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise invalid()
    return address


def phone_number(value: str | None) -> str | None:
    """A telephone number: digits, spaces and ``+ ( ) . -`` with at least three digits; None for blank."""
    if value is None or not value.strip():
        return None
    number = value.strip()
    if not _PHONE.match(number) or sum(c.isdigit() for c in number) < 3:
        raise InvalidPhone(
            f"{number!r} is not a valid telephone number (digits, spaces and + ( ) . -)",
            detail_zh="电话号码无效（只能包含数字、空格及 + ( ) . -）",
            field="phone",
        )
    return number


def auth_source(value: str, configured: set[str]) -> str:
    """``local`` or ``ldap:<name>`` of a configured external directory."""
    if value == "local":
        return value
    if not _FEDERATION.match(value) or value.removeprefix("ldap:") not in configured:
        raise FederationNotConfigured(
            f"auth_source {value!r} is not 'local' or 'ldap:<name>' of a configured external directory",
            detail_zh="认证来源须为 'local' 或已配置外部目录的 'ldap:<名称>'",
            field="auth_source",
        )
    return value

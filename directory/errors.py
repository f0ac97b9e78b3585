"""Errors of the directory package.

``DirectoryError`` is the root; the LDAP adapter (``directory/ldap.py``) raises
only ``LDAPError`` and its leaves, so callers can catch every failure of the
external directory with one ``except LDAPError``.  No python-ldap exception
crosses the adapter, and no message carries a password or a password hash.
"""

from __future__ import annotations

from core.errors import Category, HengxinError


class DirectoryError(HengxinError):
    """Root of every error raised by the ``directory`` package."""

    code = "directory.error"
    category = Category.INTERNAL
    title_en = "Directory error"
    title_zh = "目录服务错误"


class InvalidPublishedValue(DirectoryError):
    """A value handed to the LDAP mapping cannot be published as given.

    Raised for values that would produce an invalid or ambiguous entry (an
    empty login, a password hash that is not argon2id, a department path with
    an empty name).  ``field`` names the offending field.
    """

    code = "directory.invalid_published_value"
    category = Category.INVALID
    title_en = "A value cannot be published to LDAP"
    title_zh = "该值无法发布到 LDAP"


class LDAPError(DirectoryError):
    """An LDAP operation failed for a reason that has no more specific leaf.

    The detail names the operation, the entry DN and the LDAP result name
    (``objectClassViolation`` ...), never the values sent.
    """

    code = "directory.ldap_error"
    category = Category.INTERNAL
    title_en = "LDAP operation failed"
    title_zh = "LDAP 操作失败"


class LDAPUnavailable(LDAPError):
    """The LDAP server cannot be reached, refused the connection or timed out."""

    code = "directory.ldap_unavailable"
    category = Category.UNAVAILABLE
    title_en = "The LDAP server is unavailable"
    title_zh = "LDAP 服务器不可用"


class LDAPInvalidCredentials(LDAPError):
    """A simple bind was refused: wrong DN, wrong password, no password or locked.

    The same error is raised whatever the reason, so it never reveals whether
    an account exists or is locked.
    """

    code = "directory.ldap_invalid_credentials"
    category = Category.UNAUTHENTICATED
    title_en = "Invalid LDAP credentials"
    title_zh = "LDAP 凭据无效"


class LDAPNotFound(LDAPError):
    """An entry the operation needs (the entry itself or its parent) does not exist."""

    code = "directory.ldap_not_found"
    category = Category.NOT_FOUND
    title_en = "LDAP entry not found"
    title_zh = "LDAP 条目不存在"


class LDAPInsufficientAccess(LDAPError):
    """The bound identity lacks the rights for the operation: check the ACLs."""

    code = "directory.ldap_insufficient_access"
    category = Category.CONFIGURATION
    title_en = "The LDAP identity lacks the rights for this operation"
    title_zh = "LDAP 身份缺少执行该操作的权限"


class LDAPConfigurationError(LDAPError):
    """The adapter was configured with values it cannot use (URL scheme, TLS options)."""

    code = "directory.ldap_configuration"
    category = Category.CONFIGURATION
    title_en = "Invalid LDAP configuration"
    title_zh = "LDAP 配置无效"

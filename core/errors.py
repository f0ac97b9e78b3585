"""The one error hierarchy of Hengxin.

Every error a client or an operator can see is a :class:`HengxinError` with a
stable dotted ``code`` (``ca.profile_violation``), a :class:`Category` that the
API maps to an HTTP status in one table (``api/errors.py``) and the CLI maps to
an exit code in one place (``api/cli.py``), and a safe message: ``detail`` must
never contain secrets, private key material, file system paths of secrets or
internal exception text.

Each package defines one root error (``CAError``, ``DirectoryError`` ...) and a
few leaves.  A leaf sets ``code``, ``category`` and titles as class attributes::

    class ProfileViolation(CAError):
        code = "ca.profile_violation"
        category = Category.INVALID
        title_en = "Request violates the certificate profile"
        title_zh = "请求不符合证书模板"

    raise ProfileViolation("key type ed25519 is not allowed by profile server-tls",
                           detail_zh="证书模板 server-tls 不允许 ed25519 密钥", rule="key_type")

Extra keyword arguments become ``extra`` members of the problem document, so
clients can act on them without parsing text; keep them JSON-serialisable.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar


class Category(enum.Enum):
    """What kind of failure an error is; decides HTTP status and CLI exit code."""

    INVALID = "invalid"  # the input is malformed or breaks a rule: 400/422
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "conflict"  # the state forbids it (already revoked, duplicate name): 409
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403
    TOO_LARGE = "too_large"  # 413
    UNSUPPORTED_MEDIA = "unsupported_media"  # 415
    RATE_LIMITED = "rate_limited"  # 429
    UNAVAILABLE = "unavailable"  # a dependency is down (database, HSM, Vault, LDAP): 503
    CONFIGURATION = "configuration"  # the operator's configuration is wrong: 500 in the API, exit 78 in the CLI
    INTERNAL = "internal"  # a bug or an invariant broken: 500


class HengxinError(Exception):
    """Base of every Hengxin error.

    ``detail`` is the English explanation for this occurrence, safe to show to
    the caller; ``detail_zh`` is its Chinese version when one is given.
    """

    code: ClassVar[str] = "hengxin.error"
    category: ClassVar[Category] = Category.INTERNAL
    title_en: ClassVar[str] = "Error"
    title_zh: ClassVar[str] = "错误"

    def __init__(self, detail: str | None = None, *, detail_zh: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title_en
        self.detail_zh = detail_zh
        self.extra = extra
        super().__init__(self.detail)

    def title(self, language: str) -> str:
        return self.title_zh if language.startswith("zh") else self.title_en

    def localized_detail(self, language: str) -> str:
        if language.startswith("zh") and self.detail_zh:
            return self.detail_zh
        return self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


# ---------------------------------------------------------------------------
# Generic leaves shared by every package.


class InvalidInput(HengxinError):
    code = "request.invalid"
    category = Category.INVALID
    title_en = "Invalid request"
    title_zh = "请求无效"


class NotFound(HengxinError):
    code = "request.not_found"
    category = Category.NOT_FOUND
    title_en = "Not found"
    title_zh = "未找到"


class Conflict(HengxinError):
    code = "request.conflict"
    category = Category.CONFLICT
    title_en = "Conflict with the current state"
    title_zh = "与当前状态冲突"


class ConfigurationError(HengxinError):
    code = "config.invalid"
    category = Category.CONFIGURATION
    title_en = "Invalid configuration"
    title_zh = "配置无效"


class ServiceUnavailable(HengxinError):
    code = "service.unavailable"
    category = Category.UNAVAILABLE
    title_en = "A service the platform depends on is unavailable"
    title_zh = "平台依赖的服务不可用"


class InternalError(HengxinError):
    code = "internal.error"
    category = Category.INTERNAL
    title_en = "Internal error"
    title_zh = "内部错误"


# ---------------------------------------------------------------------------
# Core leaves: store, audit, keys, secrets.


class StoreError(HengxinError):
    code = "store.error"
    category = Category.UNAVAILABLE
    title_en = "Database error"
    title_zh = "数据库错误"


class DatabaseUnavailable(StoreError):
    code = "store.unavailable"
    title_en = "The database is unavailable"
    title_zh = "数据库不可用"


class AuditError(HengxinError):
    code = "audit.error"
    category = Category.INTERNAL
    title_en = "Audit log error"
    title_zh = "审计日志错误"


class AuditChainBroken(AuditError):
    """The chain does not verify; ``sequence`` names the first bad record."""

    code = "audit.chain_broken"
    category = Category.CONFLICT
    title_en = "The audit chain is broken"
    title_zh = "审计链已被破坏"


class AuditTruncated(AuditError):
    code = "audit.truncated"
    category = Category.CONFLICT
    title_en = "The audit log has been truncated"
    title_zh = "审计日志已被截断"


class KeyStoreError(HengxinError):
    code = "keys.error"
    category = Category.UNAVAILABLE
    title_en = "Key store error"
    title_zh = "密钥库错误"


class WrongPassphrase(KeyStoreError):
    code = "keys.wrong_passphrase"
    category = Category.CONFIGURATION
    title_en = "The master passphrase does not open the key store"
    title_zh = "主口令无法打开密钥库"


class KeyNotFound(KeyStoreError):
    code = "keys.not_found"
    category = Category.NOT_FOUND
    title_en = "Key not found"
    title_zh = "密钥不存在"


class UnsupportedAlgorithm(KeyStoreError):
    code = "keys.unsupported_algorithm"
    category = Category.INVALID
    title_en = "Unsupported key or signature algorithm"
    title_zh = "不支持的密钥或签名算法"


class KeyStoreUnavailable(KeyStoreError):
    code = "keys.unavailable"
    category = Category.UNAVAILABLE
    title_en = "The key store is unavailable"
    title_zh = "密钥库不可用"


class SecretError(HengxinError):
    code = "secrets.error"
    category = Category.CONFIGURATION
    title_en = "Secret store error"
    title_zh = "机密存储错误"


class SecretNotFound(SecretError):
    code = "secrets.not_found"
    title_en = "Secret not found"
    title_zh = "机密不存在"


class InsecureSecretFile(SecretError):
    code = "secrets.insecure_file"
    title_en = "A secret file is readable by others"
    title_zh = "机密文件权限过宽"

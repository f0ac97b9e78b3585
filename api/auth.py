"""Who is calling, and may they?

Every route either declares the permission it needs with
``dependencies=[require(Permission.X)]`` or is listed in :data:`PUBLIC_ROUTES`.
A test walks the app's routes and fails on any route that does neither.

Two kinds of bearer credentials are accepted (docs/auth.md):

- JWT access tokens issued by ``/api/v1/auth/login`` and ``/oauth/token``
  (verified by :class:`directory.auth.AuthService`, session still alive); the
  principal gets the union of the permissions of the roles its user holds,
  read from the directory on every request, so a revoked role takes effect at
  once;
- API tokens (``hxt_...``), stored as SHA-256 hashes, for automation and the
  break-glass bootstrap token that ``hengxin init`` creates.

Built-in roles (:data:`BUILTIN_ROLES`) map level-3 duties to permissions; the
three administrator roles are mutually exclusive (``auth.separation_of_duties``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import cast

from fastapi import Depends, Request
from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from api.errors import Forbidden, Unauthenticated
from api.platform import Platform, hash_token
from core.errors import DatabaseUnavailable
from core.store.models import APITokenRow


class Permission(enum.StrEnum):
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"
    TOKENS_MANAGE = "tokens.manage"
    CA_READ = "ca.read"
    CA_MANAGE = "ca.manage"
    CERTIFICATES_READ = "certificates.read"
    CERTIFICATES_ISSUE = "certificates.issue"
    CERTIFICATES_REVOKE = "certificates.revoke"
    DIRECTORY_READ = "directory.read"
    DIRECTORY_MANAGE = "directory.manage"
    TIMESTAMPS_READ = "timestamps.read"
    TIMESTAMPS_ISSUE = "timestamps.issue"
    SIGNATURES_CREATE = "signatures.create"
    SIGNATURES_VERIFY = "signatures.verify"
    BACKUPS_READ = "backups.read"
    BACKUPS_RUN = "backups.run"
    DRILLS_RUN = "drills.run"
    SYSTEM_READ = "system.read"
    METRICS_READ = "metrics.read"
    # Act on one's own account (log out, enrol a second factor): every logged-in person holds it.
    ACCOUNT_SELF = "account.self"
    TOKENS_INTROSPECT = "tokens.introspect"
    CERTIFICATE_REQUESTS_SUBMIT = "certificate_requests.submit"
    CERTIFICATE_REQUESTS_APPROVE = "certificate_requests.approve"


# (method, path template) of routes anyone may call.  Protocol endpoints that
# relying parties reach without credentials belong here, with a reason.
PUBLIC_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "readiness probe",
    ("GET", "/openapi.json"): "API description",
    ("GET", "/docs"): "API documentation",
    ("HEAD", "/docs"): "API documentation",
    ("GET", "/docs/oauth2-redirect"): "API documentation",
    ("HEAD", "/docs/oauth2-redirect"): "API documentation",
    ("HEAD", "/openapi.json"): "API description",
    ("POST", "/ocsp"): "OCSP responder (RFC 6960): relying parties check revocation without credentials",
    ("GET", "/ocsp/{encoded:path}"): "OCSP responder over GET (RFC 5019), cacheable by HTTP proxies",
    ("GET", "/crl/{name}.crl"): "CRL distribution point named in every certificate (DER)",
    ("GET", "/crl/{name}.pem"): "the same CRL in PEM",
    ("GET", "/ca/{name}.crt"): "CA certificate named by AIA caIssuers (DER)",
    ("GET", "/ca/{name}.pem"): "the same CA certificate in PEM",
    ("POST", "/tsa"): "RFC 3161 time-stamping for any client (with [tsa] require_authentication the handler "
    "itself requires timestamps.issue)",
    ("POST", "/api/v1/auth/login"): "login: the password, one-time code or client certificate is the credential",
    ("POST", "/oauth/token"): "OAuth token endpoint: the client secret or refresh token in the body is the credential",
    ("POST", "/oauth/revoke"): "RFC 7009 revocation: holding a token is the authority to revoke it",
    ("GET", "/.well-known/jwks.json"): "public keys relying parties verify access tokens with",
    ("GET", "/.well-known/oauth-authorization-server"): "RFC 8414 authorization server metadata",
}

# Built-in roles: (display name, description, permissions).  Seeded by api/components/auth.py.
BUILTIN_ROLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "system-administrator": (
        "系统管理员",
        "System administrator: accounts, departments, groups, role grants, platform status",
        ("directory.read", "directory.manage", "system.read", "metrics.read", "backups.read", "ca.read",
         "certificates.read", "timestamps.read"),
    ),
    "security-administrator": (
        "安全管理员",
        "Security administrator: CAs, certificates, API tokens and keys",
        ("ca.read", "ca.manage", "certificates.read", "certificates.issue", "certificates.revoke", "tokens.manage",
         "directory.read", "system.read"),
    ),
    "audit-administrator": (
        "审计管理员",
        "Audit administrator: reads and verifies the audit log of the other two",
        ("audit.read", "audit.verify", "system.read"),
    ),
    "certificate-operator": (
        "证书操作员",
        "Certificate operator: issues, approves and revokes certificates",
        ("ca.read", "certificates.read", "certificates.issue", "certificates.revoke",
         "certificate_requests.submit", "certificate_requests.approve"),
    ),
    "security-officer": (
        "安全保密员",
        "Security officer: backups and disaster-recovery drills",
        ("backups.read", "backups.run", "drills.run", "metrics.read", "system.read"),
    ),
    "auditor": ("审计员", "Auditor: read-only access to the audit log", ("audit.read",)),
    "application": (
        "应用系统",
        "Application (service account): timestamps, signatures, certificate validation, token introspection",
        ("timestamps.issue", "signatures.create", "signatures.verify", "certificates.read", "tokens.introspect"),
    ),
}


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling.  ``kind``: ``token`` (API token), ``user`` (a person) or ``service`` (a service account).

    For users and services, ``assignments`` lists (role, department or None) as granted, and
    ``session_id``, ``auth_time`` and ``amr`` come from the access token.  Department scope is recorded
    here but not yet enforced per route.
    """

    name: str
    kind: str
    permissions: frozenset[str]
    assignments: tuple[tuple[str, str | None], ...] = ()
    session_id: str | None = None
    auth_time: dt.datetime | None = None
    amr: tuple[str, ...] = ()

    def has(self, permission: str) -> bool:
        if "*" in self.permissions or permission in self.permissions:
            return True
        area = permission.split(".", 1)[0]
        return f"{area}.*" in self.permissions

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def authenticate(request: Request) -> Principal | None:
    """The caller, or None when no credentials were sent; raises Unauthenticated for bad ones."""
    cached = request.scope.get("state", {}).get("principal")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthenticated("use 'Authorization: Bearer <token>'", detail_zh="请使用 Bearer 令牌认证")
    platform = platform_of(request)
    credentials = credentials.strip()
    if credentials.count(".") == 2 and not credentials.startswith("hxt_"):
        principal = _jwt_principal(platform, credentials)
        request.scope.setdefault("state", {})["principal"] = principal
        return principal
    try:
        with platform.lookups.connect() as connection:  # one statement: one round trip on PostgreSQL
            row = connection.execute(_API_TOKEN, {"token_hash": hash_token(credentials)}).first()
    except OperationalError as e:
        raise DatabaseUnavailable("the database did not answer") from e
    now = platform.clock()
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthenticated("the token is not valid", detail_zh="令牌无效")
    principal = Principal(row.name, "token", frozenset(row.permissions.split()))
    request.scope.setdefault("state", {})["principal"] = principal
    return principal


_API_TOKENS = cast(Table, APITokenRow.__table__).c
_API_TOKEN = select(_API_TOKENS.name, _API_TOKENS.permissions, _API_TOKENS.revoked, _API_TOKENS.expires_at).where(
    _API_TOKENS.token_hash == bindparam("token_hash")
)


def _jwt_principal(platform: Platform, token: str) -> Principal:
    """The principal of a Hengxin access token, with its user's current role permissions (one snapshot read)."""
    from directory.tokens import InvalidAccessToken

    service = platform.services.get("auth")
    if service is None:
        raise Unauthenticated("the token is not valid", detail_zh="令牌无效")
    try:
        authorized = service.authorize_access_token(token)
    except InvalidAccessToken:
        raise Unauthenticated("the token is not valid", detail_zh="令牌无效") from None
    permissions = set(authorized.permissions)
    if authorized.kind == "person":
        permissions.add(Permission.ACCOUNT_SELF.value)
    access = authorized.access
    return Principal(
        access.login,
        "user" if authorized.kind == "person" else "service",
        frozenset(permissions),
        tuple((a.role, a.department_code) for a in authorized.assignments),
        access.session_id,
        access.auth_time,
        access.amr,
    )


class PermissionCheck:
    """A dependency that admits only callers holding ``permission``; also marks the route for the route audit."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> Principal:
        # Async, so a check on SQLite (a snapshot read, and a JWT signature usually already verified) runs on
        # the event loop instead of costing a thread hand-off per request; on PostgreSQL it still goes to a
        # worker thread, so the loop never waits on the network.
        if platform_of(request).local_reads:
            principal = authenticate(request)
        else:
            principal = await run_in_threadpool(authenticate, request)
        if principal is None:
            raise Unauthenticated("this resource needs credentials", detail_zh="此资源需要身份认证")
        if not principal.has(self.permission):
            raise Forbidden(
                f"permission {self.permission.value!r} is required",
                detail_zh=f"需要权限 {self.permission.value!r}",
                permission=self.permission.value,
            )
        return principal


def require(permission: Permission) -> object:
    """``dependencies=[require(Permission.X)]`` on a route."""
    return Depends(PermissionCheck(permission))


def current_principal(request: Request) -> Principal:
    """The authenticated principal of a protected route (after its PermissionCheck ran)."""
    principal = authenticate(request)
    if principal is None:
        raise Unauthenticated("this resource needs credentials")
    return principal


class StepUpRequired(Unauthenticated):
    code = "auth.step_up_required"
    title_en = "A recent strong authentication is required"
    title_zh = "需要重新进行强认证"


class RecentStrongAuthCheck:
    """A dependency admitting only people whose last strong authentication (password + TOTP, or a
    certificate) is at most ``max_age`` seconds old; API tokens and services only with ``allow_automation``.

    Refusals are 401 ``auth.step_up_required`` with ``WWW-Authenticate: Bearer
    error="insufficient_user_authentication"`` (RFC 9470), ``max_age`` and ``acr_values`` members.
    """

    def __init__(self, max_age: int | None = None, *, allow_automation: bool = False) -> None:
        self.max_age = max_age
        self.allow_automation = allow_automation

    def __call__(self, request: Request) -> Principal:
        principal = current_principal(request)
        if principal.kind != "user":
            if self.allow_automation:
                return principal
            raise Forbidden("this action needs a person's strong authentication", detail_zh="此操作需要人员强认证")
        platform = platform_of(request)
        max_age = self.max_age if self.max_age is not None else platform.settings.auth.step_up_max_age_seconds
        strong = bool({"otp", "x509", "mfa"} & set(principal.amr))
        now = platform.clock()
        if strong and principal.auth_time is not None and (now - principal.auth_time).total_seconds() <= max_age:
            return principal
        header = f'Bearer realm="hengxin", error="insufficient_user_authentication", max_age={max_age}'
        raise StepUpRequired(
            f"log in again with a second factor or a certificate (at most {max_age} s ago)",
            detail_zh=f"请在 {max_age} 秒内使用第二因素或证书重新登录",
            max_age=max_age,
            _headers={"WWW-Authenticate": header},
        )


def require_recent_strong_auth(max_age: int | None = None, *, allow_automation: bool = False) -> object:
    """``dependencies=[require(Permission.X), require_recent_strong_auth(300)]`` on a signing route."""
    return Depends(RecentStrongAuthCheck(max_age, allow_automation=allow_automation))


def client_address(request: Request) -> str:
    return str(request.scope.get("state", {}).get("client_address", "unknown"))


def utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

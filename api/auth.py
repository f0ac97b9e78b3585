"""Who is calling, and may they?

Every route either declares the permission it needs with
``dependencies=[require(Permission.X)]`` or is listed in :data:`PUBLIC_ROUTES`.
A test walks the app's routes and fails on any route that does neither.

Until the authentication issue lands, the only principals are API tokens
(``Authorization: Bearer hxt_...``), stored as SHA-256 hashes; ``hengxin init``
creates one bootstrap administrator token with every permission.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from fastapi import Depends, Request
from sqlalchemy import select

from api.errors import Forbidden, Unauthenticated
from api.platform import Platform, hash_token
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
}


@dataclasses.dataclass(frozen=True)
class Principal:
    name: str
    kind: str  # "token"
    permissions: frozenset[str]

    def has(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions

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
    digest = hash_token(credentials.strip())
    with platform.transaction() as session:
        row = session.execute(select(APITokenRow).where(APITokenRow.token_hash == digest)).scalar_one_or_none()
    now = platform.clock()
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthenticated("the token is not valid", detail_zh="令牌无效")
    principal = Principal(row.name, "token", frozenset(row.permissions.split()))
    request.scope.setdefault("state", {})["principal"] = principal
    return principal


class PermissionCheck:
    """A dependency that admits only callers holding ``permission``; also marks the route for the route audit."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, request: Request) -> Principal:
        principal = authenticate(request)
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


def client_address(request: Request) -> str:
    return str(request.scope.get("state", {}).get("client_address", "unknown"))


def utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

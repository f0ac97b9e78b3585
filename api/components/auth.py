"""The authentication component: sessions and tokens, built-in roles, separation of duties, certificate login.

``open_hook`` builds :class:`directory.auth.AuthService` into
``platform.services["auth"]`` (after the directory component), registers the
separation-of-duties check on the directory's role grants, and wires
certificate login to the CA service through a small callable
(``platform.services["auth_certificate_checker"]``), so ``directory`` never
imports ``ca``.  ``init_hook`` seeds the built-in roles and creates the
initial system administrator.
The tables are in the directory's migration branch (``directory_0002_auth``).
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from api.auth import BUILTIN_ROLES
from api.platform import SYSTEM_ACTOR, Platform
from core.errors import HengxinError
from directory.auth import AuthService, CertificateRefused, RoleDefinition
from directory.service_errors import DuplicateLogin, PasswordPolicyViolation
from directory.tokens import JWTKeys

if TYPE_CHECKING:
    from fastapi import APIRouter

log = logging.getLogger("hengxin.auth")

SERVICE = "auth"
CERTIFICATE_CHECKER = "auth_certificate_checker"
TOTP_KEY_SECRET = "auth-totp-key"  # noqa: S105 - secret names
CLIENT_KEY_SECRET = "auth-client-secret-key"  # noqa: S105
ADMIN_PASSWORD_SECRET = "admin-password"  # noqa: S105


def role_definitions() -> list[RoleDefinition]:
    return [RoleDefinition(name, display, description, permissions)
            for name, (display, description, permissions) in BUILTIN_ROLES.items()]


def certificate_checker(platform: Platform) -> Any:
    """A :class:`directory.auth.CertificateChecker` backed by the CA service's validation."""

    def check(certificate_der: bytes) -> str:
        ca = platform.services.get("ca")
        if ca is None:
            raise CertificateRefused("ca_unavailable")
        try:
            report = ca.validate(certificate_der, purpose="client-auth")
        except HengxinError as e:
            raise CertificateRefused(f"unreadable:{e.code}") from None
        if not report.valid:
            raise CertificateRefused(f"invalid:{report.code}")
        if not report.path or report.path[0].certificate_id is None:
            raise CertificateRefused("not_issued_by_hengxin")
        info = ca.get_certificate(report.path[0].certificate_id)
        owner = info.owner or ""
        if info.status != "issued" or not owner.startswith("user:"):
            raise CertificateRefused("not_bound_to_user" if info.status == "issued" else f"status:{info.status}")
        return owner.removeprefix("user:")

    return check


def open_hook(platform: Platform) -> None:
    from api.components.directory import directory_service

    settings = platform.settings
    directory = directory_service(platform)
    keys = JWTKeys(
        platform.keystore,
        platform.sessions,
        platform.clock,
        issuer=settings.instance.base_url.rstrip("/"),
        audience=settings.auth.audience,
    )
    checker = certificate_checker(platform)
    platform.services[CERTIFICATE_CHECKER] = checker
    service = AuthService(
        directory,
        platform.sessions,
        platform.require_audit(),
        keys,
        settings=settings.auth,
        sealing_key=platform.secrets.ensure_random(TOTP_KEY_SECRET).encode(),
        client_secret_key=platform.secrets.ensure_random(CLIENT_KEY_SECRET).encode(),
        certificate_checker=lambda der: platform.services[CERTIFICATE_CHECKER](der),
        clock=platform.clock,
        alerts=platform.alerts,
    )
    directory.add_grant_check(AuthService.check_role_grant)
    keys.ensure()
    platform.services[SERVICE] = service


def _random_password() -> str:
    # Upper, lower, digit and punctuation guaranteed: any character-class policy up to 4 accepts it.
    return "Hx-" + secrets.token_urlsafe(18) + "7a"


def init_hook(platform: Platform, details: dict[str, Any]) -> dict[str, Any]:
    """Seed the built-in roles (idempotent: re-run `hengxin init` after an upgrade) and create the initial
    system administrator with a random password in the secret store (once)."""
    from api.components.directory import directory_service

    directory = directory_service(platform)
    created_roles = auth_service(platform).ensure_roles(role_definitions())
    report: dict[str, Any] = {"built-in roles created": ", ".join(created_roles)} if created_roles else {}
    login = platform.settings.auth.initial_admin_login
    if not login or platform.secrets.exists(ADMIN_PASSWORD_SECRET):
        return report
    for _ in range(5):
        password = _random_password()
        try:
            directory.create_user(SYSTEM_ACTOR, login=login, display_name="系统管理员", password=password)
            break
        except PasswordPolicyViolation:
            continue
        except DuplicateLogin:
            return report
    else:  # pragma: no cover - five random passwords all refused
        return {**report, "initial administrator": "not created: the password policy refused generated passwords"}
    directory.grant_role(SYSTEM_ACTOR, login, "system-administrator")
    platform.secrets.put(ADMIN_PASSWORD_SECRET, password)
    reference = platform.secrets.reference(ADMIN_PASSWORD_SECRET)
    where = str(reference) if reference is not None else f"secret {ADMIN_PASSWORD_SECRET!r}"
    return {**report, f"initial system administrator '{login}' password": where}


def auth_service(platform: Platform) -> AuthService:
    service: AuthService = platform.services[SERVICE]
    return service


def router() -> APIRouter:
    from api.routes.auth import router as auth_router

    return auth_router

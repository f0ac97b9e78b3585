"""The directory component: service, LDAP publisher and its background task, routes, CLI groups.

Other components reach the directory through the helpers at the end of this
module (``publish_ca``, ``set_user_certificates``), never by importing
``directory`` themselves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import directory as directory_package
from api.platform import Platform
from core.config import Settings
from core.errors import ConfigurationError, HengxinError
from directory.errors import LDAPConfigurationError
from directory.federation import FederatedDirectories
from directory.ldap import LDAPDirectory
from directory.passwords import Argon2Parameters, PasswordHasher
from directory.publisher import DirectoryPublisher, PublishReport
from directory.service import DirectoryService

if TYPE_CHECKING:
    from fastapi import APIRouter
    from sqlalchemy.orm import Session

log = logging.getLogger("hengxin.directory")

MIGRATIONS = Path(directory_package.__file__).resolve().parent / "migrations"
SERVICE = "directory"
PUBLISHER = "directory_publisher"
FEDERATION = "directory_federation"
SWEEP_EVERY_SECONDS = 60.0


def connect_ldap(platform: Platform) -> LDAPDirectory:
    """The adapter for the configured LDAP server, bound as the sync identity.

    Raises ``LDAPConfigurationError`` (also when the bind password is not in the secret store).
    """
    settings = platform.settings.directory
    password = None
    if settings.bind_dn:
        try:
            password = platform.secrets.get(settings.bind_password_secret)
        except HengxinError as e:
            raise LDAPConfigurationError(
                f"the LDAP bind password secret {settings.bind_password_secret!r} cannot be read ({e.code})",
                detail_zh=f"无法读取 LDAP 绑定密码机密 {settings.bind_password_secret!r}",
            ) from e
    return LDAPDirectory(
        settings.ldap_url,
        settings.base_dn,
        bind_dn=settings.bind_dn or None,
        password=password,
        start_tls=settings.start_tls,
        ca_file=settings.ca_file,
        network_timeout=settings.network_timeout_seconds,
        operation_timeout=settings.operation_timeout_seconds,
    )


def check_settings(settings: Settings) -> None:
    """Refuse LDAP settings that cannot work, and, in production, LDAP without TLS.

    Over plain ``ldap://`` the sync identity's bind sends its password, and
    every write the argon2 hashes, in clear; federated logins send users'
    passwords.  Raises ``ConfigurationError``.
    """
    directory = settings.directory
    if directory.enabled and not directory.ldap_url.strip():
        raise ConfigurationError(
            "[directory] enabled = true needs ldap_url", detail_zh="启用 [directory] 需要设置 ldap_url"
        )
    if settings.instance.environment != "production":
        return
    servers = [("[directory] ldap_url", directory.ldap_url, directory.start_tls)] if directory.enabled else []
    servers += [(f"[[directory.federation]] {f.name}", f.url, f.start_tls) for f in directory.federation]
    for where, url, start_tls in servers:
        if any(u.lower().startswith("ldap://") for u in url.split()) and not start_tls:
            raise ConfigurationError(
                f"{where}: use ldaps:// or start_tls = true in production (binds would send passwords in clear)"
            )


def open_hook(platform: Platform) -> None:
    settings = platform.settings
    check_settings(settings)
    federation = FederatedDirectories(
        settings.directory.federation,
        platform.secrets.get,
        network_timeout=settings.directory.network_timeout_seconds,
        operation_timeout=settings.directory.operation_timeout_seconds,
    )
    service = DirectoryService(
        platform.sessions,
        platform.require_audit(),
        clock=platform.clock,
        passwords=settings.passwords,
        publishing=settings.directory.enabled,
        federation=federation,
        alerts=platform.alerts,
        hasher=PasswordHasher(
            Argon2Parameters.from_settings(settings.passwords), max_concurrent=hashes_at_once(settings.server.workers)
        ),
    )
    platform.services[SERVICE] = service
    platform.services[FEDERATION] = federation
    if not settings.directory.enabled:
        return
    publisher = DirectoryPublisher(
        platform.sessions,
        lambda: connect_ldap(platform),
        service.published_state,
        alerts=platform.alerts,
        clock=platform.clock,
        batch_size=settings.directory.publish_batch_size,
        alert_after_attempts=settings.directory.alert_after_attempts,
        max_attempts=settings.directory.max_attempts,
    )
    service.add_change_listener(publisher.wake)
    platform.services[PUBLISHER] = publisher
    platform.services.setdefault("background_tasks", []).append(lambda: publisher_loop(platform))


def hashes_at_once(workers: int) -> int:
    """How many password hashes one server process computes at once: its share of the cores.

    On two cores with 16 concurrent logins this halved the 99th-percentile login time and lowered the CPU per
    login by a few per cent, against letting every request thread hash at once (bench/bench_login.py).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def directory_service(platform: Platform) -> DirectoryService:
    service: DirectoryService = platform.services[SERVICE]
    return service


def directory_publisher(platform: Platform) -> DirectoryPublisher | None:
    return platform.services.get(PUBLISHER)


def publish_cycle(service: DirectoryService, publisher: DirectoryPublisher, state: dict[str, float]) -> PublishReport:
    """One run of the background publisher: the expiry sweep (at most once a minute), then the queue."""
    now = time.monotonic()
    if now - state.get("swept", 0.0) >= SWEEP_EVERY_SECONDS:
        state["swept"] = now
        service.sweep_expired()
    return publisher.publish_pending()


async def publisher_loop(platform: Platform) -> None:
    """Publish the outbox whenever a change commits, and every ``publish_interval_seconds`` to retry."""
    service = directory_service(platform)
    publisher = platform.services[PUBLISHER]
    interval = platform.settings.directory.publish_interval_seconds
    state: dict[str, float] = {}
    while True:
        report: PublishReport | None = None
        try:
            report = await asyncio.to_thread(publish_cycle, service, publisher, state)
        except HengxinError as e:
            log.warning("directory publisher run failed", extra={"code": e.code})
        except Exception:
            log.exception("directory publisher run failed")
        if report is not None and report.pending and report.error is None and not report.busy:
            await asyncio.sleep(0)  # more to do right away
            continue
        waited = 0.0
        while waited < interval and not publisher.take_wake():
            await asyncio.sleep(0.1)
            waited += 0.1


def router() -> APIRouter:
    from api.routes.directory import router as directory_router

    return directory_router


# -- hooks for other components ----------------------------------------------------------------


def publish_ca(
    platform: Platform, name: str, certificate: bytes, crl: bytes | None = None, *, session: Session | None = None
) -> None:
    """Publish a CA certificate and CRL (DER) to LDAP; pass ``session`` to join the caller's transaction."""
    directory_service(platform).publish_ca(name, certificate, crl, session=session)


def set_user_certificates(platform: Platform, login: str, certificates: list[bytes], *, actor: str = "system") -> Any:
    """Replace the certificates published for a user (DER)."""
    return directory_service(platform).set_user_certificates(login, certificates, actor=actor)


def _cli() -> tuple[Any, dict[str, Any]]:
    from api.cli_directory import directory_app, groups

    return directory_app, groups


cli, CLI_GROUPS = _cli()
CLI_NAME = "directory"

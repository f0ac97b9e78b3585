"""Composition of the certificate authority: migrations, the service, background jobs, routes, CLI.

``open_hook`` builds :class:`ca.service.CAService` into ``platform.services["ca"]``,
adds the CRL publisher and the maintenance job (OCSP responder renewal, daily
expiry alerts) to ``background_tasks`` and a readiness probe.  ``init_hook``
creates the root and issuing CAs on ``hengxin init``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ca

if TYPE_CHECKING:
    from fastapi import APIRouter

    from api.platform import Platform
    from ca.service import CAService

MIGRATIONS = Path(ca.__file__).parent / "migrations"
CLI_NAME = "ca"

log = logging.getLogger("hengxin.ca")


def build_service(platform: Platform) -> CAService:
    """A CA service wired to the platform's database, key store, audit log, alerts and clock."""
    from ca.service import CAOptions, CAService, profiles_from_file

    settings = platform.settings
    service = CAService(
        sessions=platform.sessions,
        keystore=platform.keystore,
        audit=platform.require_audit(),
        alerts=platform.alerts,
        clock=platform.clock,
        options=CAOptions.from_settings(settings),
        profiles=profiles_from_file(settings.ca.profiles_file),
    )
    service.start()
    return service


def open_hook(platform: Platform) -> None:
    """Build the CA service, its background jobs and its readiness probe."""
    service = build_service(platform)
    platform.services["ca"] = service
    interval = platform.settings.ca.crl_check_interval_seconds
    maintenance_interval = platform.settings.ca.maintenance_interval_seconds

    async def crl_publisher() -> None:
        # Every few seconds: publish the CRLs that are due (lease-guarded, so one node at a time).
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(service.publish_due_crls)
            except Exception:  # noqa: BLE001 - the loop must survive a bad cycle; the cause is logged
                log.exception("CRL publication cycle failed")

    async def maintenance() -> None:
        # OCSP responder renewal and the daily expiry alerts; first run shortly after start.
        delay = min(30.0, maintenance_interval)
        while True:
            await asyncio.sleep(delay)
            delay = maintenance_interval
            try:
                await asyncio.to_thread(service.run_maintenance)
            except Exception:  # noqa: BLE001 - as above
                log.exception("CA maintenance failed")

    if platform.settings.ca.background_jobs:
        tasks = platform.services.setdefault("background_tasks", [])
        tasks.append(crl_publisher)
        tasks.append(maintenance)
    platform.services.setdefault("readiness_probes", {})["ca"] = service.check_ready


def init_hook(platform: Platform, details: dict[str, Any]) -> dict[str, Any]:
    """Create the root and the issuing CA (if absent) and report their fingerprints."""
    from api.platform import SYSTEM_ACTOR

    service = platform.services.get("ca")
    if service is None:
        service = build_service(platform)
        platform.services["ca"] = service
    root, issuing = service.ensure_hierarchy(actor=SYSTEM_ACTOR)
    return {
        f"root CA '{root.name}' fingerprint (SHA-256)": root.fingerprint_sha256,
        f"issuing CA '{issuing.name}' fingerprint (SHA-256)": issuing.fingerprint_sha256,
    }


def router() -> APIRouter:
    from fastapi import APIRouter

    from api.routes.ca import router as ca_router
    from api.routes.protocol_ca import router as protocol_router

    # One router holding both sets of routes (the route audit walks router.routes).
    return APIRouter(routes=[*ca_router.routes, *protocol_router.routes])


def protocol_endpoints() -> dict[tuple[str, str], Any]:
    """``POST /ocsp`` and ``GET /ocsp/...`` as plain ASGI handlers, for the application's protocol dispatcher."""
    from api.routes.protocol_ca import PROTOCOL_ENDPOINTS

    return PROTOCOL_ENDPOINTS


def __getattr__(name: str) -> Any:
    # The CLI group is imported lazily: api.cli imports this module while it is itself being imported.
    if name == "cli":
        from api.cli_ca import app

        return app
    raise AttributeError(name)

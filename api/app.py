"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.middleware import (
    BodyLimitMiddleware,
    ProtocolDispatch,
    RateLimitMiddleware,
    RequestContextMiddleware,
    TimeoutMiddleware,
    TrustedProxies,
)
from api.platform import Platform, open_platform
from api.routes import audit, health, tokens
from core.config import Settings
from core.errors import HengxinError

log = logging.getLogger("hengxin.api")

# Paths whose bodies may be as large as [server] upload_max_body_bytes (documents to sign or verify).
UPLOAD_PREFIXES: tuple[str, ...] = ("/api/v1/signatures", "/api/v1/timestamps/pdf")


# FastAPI 0.16x asks OpenTelemetry on every request whether tracing, metrics or logs are configured.  Hengxin
# does not use OpenTelemetry (its access log and audit log say what happened): switched off where supported.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_app(settings: Settings, platform: Platform | None = None) -> FastAPI:
    """Build the app.  With no ``platform`` one is opened at start-up and closed at shutdown."""
    owns_platform = platform is None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.platform is None:
            app.state.platform = open_platform(settings)
        tasks = [asyncio.create_task(_checkpoint_loop(app.state.platform))]
        for starter in app.state.platform.services.get("background_tasks", []):
            tasks.append(asyncio.create_task(starter()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if owns_platform:
                app.state.platform.close()

    app = FastAPI(
        title="Hengxin 恒信",
        version="0.1.0",
        description="Unified trust platform: PKI, directory, timestamps, signing, backup and disaster recovery.",
        lifespan=lifespan,
        redoc_url=None,
        **_NO_TELEMETRY,
    )
    app.state.platform = platform
    app.state.settings = settings
    app.state.default_language = settings.i18n.default_language
    install_error_handlers(app)
    from api.components import components

    domain_routers = [module.router() for module in components() if hasattr(module, "router")]
    routers = [health.router, audit.router, tokens.router, *domain_routers]
    for router in routers:
        app.include_router(router)
    # Kept for the route audit (tests/integration/api): every route is public or declares a permission.
    app.state.routers = routers

    language = settings.i18n.default_language
    # Outermost first at runtime: context (request id) -> timeout -> rate limit -> body limit
    # -> protocol dispatch (OCSP, TSA as plain ASGI handlers) -> app.  add_middleware puts each outside the last.
    tables = [module.protocol_endpoints() for module in components() if hasattr(module, "protocol_endpoints")]
    app.add_middleware(ProtocolDispatch, tables=tables)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.server.max_body_bytes,
        upload_limit=settings.server.upload_max_body_bytes,
        upload_prefixes=UPLOAD_PREFIXES,
        default_language=language,
    )
    app.add_middleware(
        RateLimitMiddleware,
        per_minute=settings.server.rate_limit_per_minute,
        burst=settings.server.rate_limit_burst,
        default_language=language,
    )
    app.add_middleware(TimeoutMiddleware, seconds=settings.server.request_timeout_seconds, default_language=language)
    app.add_middleware(RequestContextMiddleware, proxies=TrustedProxies(settings.server.trusted_proxies))
    return app


async def _checkpoint_loop(platform: Platform) -> None:
    """Write a time-based audit checkpoint when the head moved and the interval passed."""
    interval = max(30.0, platform.settings.audit.checkpoint_minutes * 60 / 4)
    while True:
        await asyncio.sleep(interval)
        audit = platform.audit
        if audit is None:
            continue
        try:
            await asyncio.to_thread(_checkpoint_if_due, platform)
        except HengxinError as e:
            log.warning("audit checkpoint failed", extra={"code": e.code})


def _checkpoint_if_due(platform: Platform) -> None:
    audit = platform.require_audit()
    if not audit.checkpoint_due(platform.clock()):
        return
    with platform.transaction() as session:
        audit.checkpoint(session)

"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.auth import platform_of
from core.errors import HengxinError
from core.store import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and the keys can sign")
def readyz(request: Request) -> JSONResponse:
    platform = platform_of(request)
    checks: dict[str, str] = {}
    ready = True
    probes = {"database": lambda: ping(platform.engine), "keys": platform.keystore.check}
    if platform.audit is not None:
        audit = platform.audit
        probes["audit_key"] = lambda: platform.keystore.sign(audit.key_id, b"hengxin readiness probe")
    for name, probe in [*probes.items(), *platform.services.get("readiness_probes", {}).items()]:
        try:
            probe()
            checks[name] = "ok"
        except HengxinError as e:
            checks[name] = e.code
            ready = False
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )

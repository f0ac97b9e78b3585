"""Drills over HTTP: start one (202), list the history, read a report (JSON or signed PDF)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import Permission, current_principal, platform_of, require
from api.pagination import PageParams, encode_cursor
from core.errors import ConfigurationError, InvalidInput
from dr.drill import DrillService
from dr.errors import ReportUnavailable

router = APIRouter(tags=["drills"])


class DrillIn(BaseModel):
    model_config = {"extra": "forbid"}
    repository: str | None = Field(None, max_length=100)
    snapshot: str = Field("latest", max_length=64, pattern=r"^(latest|[0-9a-f]{8,64})$")


def service_of(request: Request) -> DrillService:
    service = platform_of(request).services.get("dr")
    if not isinstance(service, DrillService):
        raise ConfigurationError("the drill component is not available")
    return service


@router.post("/api/v1/drills", dependencies=[require(Permission.DRILLS_RUN)], status_code=202,
             summary="Start a disaster-recovery drill (runs in the background)")
def start_drill(request: Request, body: DrillIn | None = None) -> dict[str, Any]:
    body = body or DrillIn()
    principal = current_principal(request)
    drill_id = service_of(request).start_drill(
        repository=body.repository, snapshot=body.snapshot, trigger="api", actor=principal.actor
    )
    return {"id": drill_id, "status": "running", "href": f"/api/v1/drills/{drill_id}"}


@router.get("/api/v1/drills", dependencies=[require(Permission.DRILLS_RUN)], summary="The drill history, newest first")
def list_drills(request: Request, page: PageParams = Depends()) -> dict[str, Any]:
    before = page.after()
    if before is not None and not isinstance(before, str):
        raise InvalidInput("the cursor is not valid; use next_cursor from a previous page", detail_zh="分页游标无效")
    items = service_of(request).list_drills(limit=page.limit, before=before)
    more = len(items) > page.limit
    items = items[: page.limit]
    return {"items": items, "next_cursor": encode_cursor(items[-1]["id"]) if more and items else None}


@router.get("/api/v1/drills/{drill_id}", dependencies=[require(Permission.DRILLS_RUN)], summary="A drill's report")
def get_drill(request: Request, drill_id: str) -> dict[str, Any]:
    return service_of(request).get(drill_id)


@router.get("/api/v1/drills/{drill_id}/report.pdf", dependencies=[require(Permission.DRILLS_RUN)],
            response_class=Response, summary="A drill's signed PDF report")
def get_drill_pdf(request: Request, drill_id: str) -> Response:
    pdf = service_of(request).report_pdf(drill_id)
    if pdf is None:
        raise ReportUnavailable("this drill has no PDF report", detail_zh="该演练没有 PDF 报告")
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="drill-{drill_id}.pdf"'})

"""The audit log over HTTP: list with filters, verify the chain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.auth import Permission, platform_of, require
from api.pagination import Page, PageParams, page_of
from core.clock import isoformat_utc

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditRecordOut(BaseModel):
    sequence: int
    recorded_at: str
    actor: str
    action: str
    target: str
    outcome: str
    source: str
    details: dict[str, Any]
    previous_hash: str
    record_hash: str


class VerifyOut(BaseModel):
    intact: bool
    records: int
    head_sequence: int
    head_hash: str
    checkpoints: int


@router.get(
    "",
    dependencies=[require(Permission.AUDIT_READ)],
    response_model=Page[AuditRecordOut],
    summary="List audit records, oldest first",
)
def list_audit(
    request: Request,
    page: PageParams = Depends(),
    action: str | None = Query(None, max_length=100),
    actor: str | None = Query(None, max_length=200),
    since: dt.datetime | None = Query(None, description="RFC 3339 time, inclusive"),
    until: dt.datetime | None = Query(None, description="RFC 3339 time, exclusive"),
) -> Page[AuditRecordOut]:
    platform = platform_of(request)
    audit = platform.require_audit()
    after = int(page.after() or 0)
    with platform.transaction() as session:
        records = audit.records(
            session,
            since=_aware(since),
            until=_aware(until),
            after_sequence=after,
            action=action,
            actor=actor,
            limit=page.limit + 1,
        )
    items = [AuditRecordOut(**{**r.to_json(), "recorded_at": isoformat_utc(r.recorded_at)}) for r in records]
    return page_of(items, page.limit, lambda item: item.sequence)


@router.post(
    "/verify",
    dependencies=[require(Permission.AUDIT_VERIFY)],
    response_model=VerifyOut,
    summary="Verify the whole chain and its signed checkpoints",
)
def verify_audit(request: Request) -> VerifyOut:
    platform = platform_of(request)
    with platform.transaction() as session:
        report = platform.require_audit().verify(session)
    return VerifyOut(
        intact=True,
        records=report.records,
        head_sequence=report.head_sequence,
        head_hash=report.head_hash,
        checkpoints=report.checkpoints,
    )


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

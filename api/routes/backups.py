"""Backups over HTTP: the run history, the jobs, starting a run, and Prometheus metrics at ``/metrics``.

Nothing here returns a repository password or any secret value: repositories
are shown by name, role and location (credentials in a URL are masked).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from api.auth import Permission, client_address, current_principal, platform_of, require
from api.pagination import Page, PageParams, page_of
from backup.metrics import CONTENT_TYPE
from backup.service import BackupService, JobStatus, RunRecord
from core.clock import isoformat_utc
from core.errors import ConfigurationError

router = APIRouter(tags=["backups"])


class BackupRunOut(BaseModel):
    id: int
    job: str
    kind: str
    trigger: str
    actor: str
    node: str
    repository: str
    started_at: str
    finished_at: str
    duration_seconds: float
    result: str
    snapshot_id: str | None
    files_total: int
    files_new: int
    files_changed: int
    bytes_processed: int
    bytes_added: int
    manifest_sha256: str | None
    details: dict[str, Any]
    error_code: str | None
    error_message: str | None


class RepositoryOut(BaseModel):
    name: str
    role: str
    url: str


class BackupJobOut(BaseModel):
    name: str
    repository: str
    copy_to: list[str]
    sources: list[str]
    schedule: str
    next_run_at: str | None
    check_schedule: str
    next_check_at: str | None
    read_data_subset_days: int
    retention: dict[str, int]
    running_on: str | None
    last_run: BackupRunOut | None
    last_success: BackupRunOut | None
    last_check: BackupRunOut | None
    repositories: list[RepositoryOut]


class RunStarted(BaseModel):
    job: str
    status: str
    node: str


def _service(request: Request) -> BackupService:
    service = platform_of(request).services.get("backup")
    if not isinstance(service, BackupService):
        raise ConfigurationError("the backup component is not configured")
    return service


def _run_out(record: RunRecord | None) -> BackupRunOut | None:
    return BackupRunOut(**record.to_json()) if record is not None else None


def _job_out(status: JobStatus, repositories: list[RepositoryOut]) -> BackupJobOut:
    used = {status.repository, *status.copy_to}
    return BackupJobOut(
        name=status.name,
        repository=status.repository,
        copy_to=list(status.copy_to),
        sources=list(status.sources),
        schedule=status.schedule,
        next_run_at=isoformat_utc(status.next_run_at) if status.next_run_at else None,
        check_schedule=status.check_schedule,
        next_check_at=isoformat_utc(status.next_check_at) if status.next_check_at else None,
        read_data_subset_days=status.read_data_subset_days,
        retention=dict(status.retention),
        running_on=status.running_on,
        last_run=_run_out(status.last_run),
        last_success=_run_out(status.last_success),
        last_check=_run_out(status.last_check),
        repositories=[r for r in repositories if r.name in used],
    )


@router.get(
    "/api/v1/backups",
    dependencies=[require(Permission.BACKUPS_READ)],
    response_model=Page[BackupRunOut],
    summary="List backup and check runs, newest first",
)
def list_backup_runs(
    request: Request,
    page: PageParams = Depends(),
    job: str | None = Query(None, max_length=100),
    kind: str | None = Query(None, pattern="^(backup|check)$"),
    result: str | None = Query(None, pattern="^(success|failed)$"),
) -> Page[BackupRunOut]:
    after = page.after()
    before_id = int(after) if isinstance(after, int) else None
    records = _service(request).list_runs(job=job, kind=kind, result=result, before_id=before_id, limit=page.limit + 1)
    items = [BackupRunOut(**r.to_json()) for r in records]
    return page_of(items, page.limit, lambda item: item.id)


@router.get(
    "/api/v1/backups/jobs",
    dependencies=[require(Permission.BACKUPS_READ)],
    response_model=Page[BackupJobOut],
    summary="List the configured backup jobs with their schedules and latest runs",
)
def list_backup_jobs(request: Request, page: PageParams = Depends()) -> Page[BackupJobOut]:
    service = _service(request)
    after = page.after()
    repositories = [RepositoryOut(name=r.name, role=r.role, url=r.url) for r in service.repositories()]
    statuses = [s for s in service.status() if not isinstance(after, str) or s.name > after]
    statuses.sort(key=lambda s: s.name)
    items = [_job_out(s, repositories) for s in statuses[: page.limit + 1]]
    return page_of(items, page.limit, lambda item: item.name)


@router.post(
    "/api/v1/backups/{job}/run",
    status_code=202,
    dependencies=[require(Permission.BACKUPS_RUN)],
    response_model=RunStarted,
    summary="Start a backup of the job now; the outcome appears in the run list",
)
def run_backup_job(job: str, request: Request) -> RunStarted:
    service = _service(request)
    principal = current_principal(request)
    service.start_backup(job, trigger="api", actor=f"{principal.actor}@{client_address(request)}")
    return RunStarted(job=job, status="started", node=service.node)


@router.get(
    "/metrics",
    dependencies=[require(Permission.METRICS_READ)],
    response_class=Response,
    summary="Prometheus metrics (text exposition format); needs a bearer token with metrics.read",
)
def metrics(request: Request) -> Response:
    return Response(content=_service(request).metrics(), media_type=CONTENT_TYPE)

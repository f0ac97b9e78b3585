"""``hengxin request ...``: submit, list, approve and reject certificate requests (the operator's path).

The actor is ``cli:<user>`` (``SUDO_USER`` or ``USER``); errors surface as the usual one line
``hengxin: error: ... [ra.self_approval]`` and exit code (see :func:`api.cli.main`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from api.cli_ca import _actor
from api.platform import Platform, open_platform
from ca.ra import CertificateRequest, RegistrationAuthority, RequestQuery, Submission
from core.clock import isoformat_utc
from core.errors import ConfigurationError

app = typer.Typer(help="Certificate requests: submit, list, approve, reject.", no_args_is_help=True)


@contextmanager
def _service() -> Iterator[tuple[Platform, RegistrationAuthority]]:
    from api.cli import settings  # imported here: api.cli imports this module while loading

    platform = open_platform(settings(), alerts_enabled=True)
    try:
        service = platform.services.get("ra")
        if not isinstance(service, RegistrationAuthority):
            raise ConfigurationError("the registration authority is not available: run `hengxin init` first")
        yield platform, service
    finally:
        platform.close()


def _line(item: CertificateRequest) -> str:
    approvers = ",".join(a.approver for a in item.approvals) or "-"
    cert = f" certificate={item.certificate_id}" if item.certificate_id is not None else ""
    return (f"{item.id}\t{item.status}\t{item.profile}\t{item.owner}\t"
            f"{len(item.approvals)}/{item.approvals_required} ({approvers})\t{isoformat_utc(item.created_at)}{cert}")


@app.command("submit")
def submit(
    profile: str = typer.Option(..., "--profile", "-p", help="Certificate profile, e.g. person-auth."),
    subject: str = typer.Option(..., "--for", help="Whom it is for: user:<login> (or a login)."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why the certificate is needed (audited)."),
    csr: Path | None = typer.Option(None, "--csr", help="PKCS #10 request file (PEM or DER)."),
    custodial: bool = typer.Option(False, "--custodial", help="Generate the key in the key store instead."),
    subject_json: str | None = typer.Option(None, "--subject", help='Non-person profiles: {"CN": ..., "O": ...}.'),
) -> None:
    """Submit a request on a user's behalf."""
    if (csr is None) == (not custodial):
        raise typer.BadParameter("give exactly one of --csr and --custodial")
    submission = Submission(
        profile=profile, subject_login=subject.removeprefix("user:"), reason=reason,
        key_mode="custodial" if custodial else "csr", csr=csr.read_bytes() if csr else None,
        subject=json.loads(subject_json) if subject_json else None,
    )
    with _service() as (_, service):
        typer.echo(_line(service.submit(submission, actor=_actor())))


@app.command("list")
def list_requests(
    status: str | None = typer.Option(None, "--status", help="pending, approved, issued, rejected, cancelled."),
    profile: str | None = typer.Option(None, "--profile"),
    subject: str | None = typer.Option(None, "--for", help="user:<login>"),
    limit: int = typer.Option(100, "--limit", min=1, max=500),
) -> None:
    """List requests (id, status, profile, for whom, approvals, created)."""
    with _service() as (_, service):
        query = RequestQuery(status=status, profile=profile,
                             subject_login=subject.removeprefix("user:") if subject else None, limit=limit)
        for item in service.search(query)[:limit]:
            typer.echo(_line(item))


@app.command("approve")
def approve(request_id: int = typer.Argument(..., help="Request id.")) -> None:
    """Approve a request; the certificate is issued when its rule is met."""
    with _service() as (_, service):
        typer.echo(_line(service.approve(request_id, actor=_actor())))


@app.command("reject")
def reject(
    request_id: int = typer.Argument(..., help="Request id."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (audited, sent to the requester's alert)."),
) -> None:
    """Reject a pending request."""
    with _service() as (_, service):
        typer.echo(_line(service.reject(request_id, actor=_actor(), reason=reason)))

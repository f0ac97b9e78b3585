"""``hengxin dr ...``: run a disaster-recovery drill, list drills, restore a snapshot onto a new node.

``hengxin dr drill`` exits 0 when the drill passed, 2 when it failed and 1 when
it could not run, after printing the result, the failing step and the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from api.platform import open_platform
from core.errors import ConfigurationError

app = typer.Typer(help="Disaster-recovery drills and restores.", no_args_is_help=True)


def _actor() -> str:
    return f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'root'}"


@app.command("drill")
def drill(
    repo: str | None = typer.Option(None, "--repo", help="Repository to restore from (default [dr] repository)."),
    snapshot: str = typer.Option("latest", "--snapshot", help="Snapshot ID (default: the latest)."),
    secrets_file: Path | None = typer.Option(
        None, "--secrets-file", help="0600 file with the secrets not in backups (NAME=value lines, or the passphrase)."
    ),
    output_json: bool = typer.Option(False, "--json", help="Print the report JSON."),
) -> None:
    """Restore a snapshot into a sandbox, probe it, measure RTO/RPO, record and report."""
    from api.cli import settings
    from dr.drill import DrillService

    platform = open_platform(settings())
    try:
        service = platform.services.get("dr")
        if not isinstance(service, DrillService):
            raise ConfigurationError("the drill component is not available: run `hengxin init` first")
        result = service.run_drill(
            repository=repo, snapshot=snapshot, trigger="cli", actor=_actor(), secrets_file=secrets_file
        )
    finally:
        platform.close()
    if output_json:
        typer.echo(json.dumps(result.report, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        for step in result.report.get("steps", []):
            typer.echo(f"  {step['name']:<24} {step['status']:<8} {step['seconds']:8.2f} s")
        typer.echo(
            f"drill {result.id}: {result.result}; RTO {result.rto_seconds} s; RPO {result.rpo_seconds} s"
            + (f"; failing step {result.failing_step}: {result.reason} [{result.error_code}]" if result.reason else "")
        )
    raise typer.Exit(result.exit_code)


@app.command("list")
def list_drills(limit: int = typer.Option(20, min=1, max=500)) -> None:
    """The drill history, newest first."""
    from api.cli import settings

    platform = open_platform(settings())
    try:
        service = platform.services["dr"]
        for item in service.list_drills(limit=limit)[:limit]:
            typer.echo(
                f"{item['id']}  {item['result']:<13} RTO {item['rto_seconds']}  RPO {item['rpo_seconds']}  "
                f"{item['failing_step'] or ''}"
            )
    finally:
        platform.close()


@app.command("restore")
def restore(
    snapshot: str = typer.Option("latest", "--snapshot", help="Snapshot ID."),
    target: Path = typer.Option(..., "--target", help="Empty directory of the new node's instance."),
    repo: str | None = typer.Option(None, "--repo", help="Repository (default [dr] repository)."),
) -> None:
    """Recover onto a new node: restore and verify the snapshot, place database, keys, audit segments and
    a configuration under TARGET, ready for ``hengxin --config TARGET/hengxin.toml serve`` once the
    escrowed secrets are back in TARGET/secrets."""
    from api.cli import settings
    from dr.restore import restore_node

    platform = open_platform(settings())
    try:
        summary = restore_node(platform.services["dr"], snapshot=snapshot, target=target, repository=repo)
    finally:
        platform.close()
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))

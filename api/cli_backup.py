"""``hengxin backup ...``: initialise repositories, run and check jobs, show the history, restore.

A failed run prints its record and then fails the command with the run's own
error, so the usual one line ``hengxin: error: ... [backup.wrong_password]``
and exit code appear (see :func:`api.cli.main`).  Long runs show restic's
progress on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import typer

from api.platform import Platform, open_platform
from backup.restic import BackupProgress
from backup.service import BackupService, RunOutcome, RunRecord
from core.clock import isoformat_utc
from core.errors import ConfigurationError

app = typer.Typer(help="Backups: repositories, jobs, runs, checks, restores.", no_args_is_help=True)


@contextmanager
def _service() -> Iterator[tuple[Platform, BackupService]]:
    from api.cli import settings  # imported here: api.cli imports this module while loading

    platform = open_platform(settings())
    try:
        service = platform.services.get("backup")
        if not isinstance(service, BackupService):
            raise ConfigurationError("the backup component is not available: run `hengxin init` first")
        yield platform, service
    finally:
        platform.close()


def _actor() -> str:
    return f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'root'}"


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"


class ProgressPrinter:
    """Shows restic's progress on ``stream``: rewritten in place on a terminal, a line every 10 s otherwise."""

    def __init__(self, job: str, stream: TextIO = sys.stderr) -> None:
        self.job = job
        self.stream = stream
        self.interactive = stream.isatty()
        self.interval = 0.5 if self.interactive else 10.0
        self._last = 0.0
        self._shown = False

    def __call__(self, progress: BackupProgress) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        line = (
            f"backup {self.job}: {progress.percent_done * 100:5.1f}%  "
            f"{_size(progress.bytes_done)} / {_size(progress.total_bytes)}  "
            f"{progress.files_done}/{progress.total_files} files"
        )
        if self.interactive:
            self.stream.write("\r" + line.ljust(78))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self.interactive and self._shown:
            self.stream.write("\n")
            self.stream.flush()


def _describe(record: RunRecord) -> str:
    if record.kind == "backup" and record.succeeded:
        return (
            f"backup of {record.job!r} succeeded: snapshot {record.snapshot_id}, {record.files_total} files, "
            f"{_size(record.bytes_processed)} read, {_size(record.bytes_added)} added, "
            f"{record.duration_seconds:.1f} s (run {record.id})"
        )
    if record.succeeded:
        return f"check of {record.job!r} succeeded in {record.duration_seconds:.1f} s (run {record.id})"
    return f"{record.kind} of {record.job!r} failed after {record.duration_seconds:.1f} s (run {record.id})"


def _conclude(outcome: RunOutcome) -> None:
    typer.echo(_describe(outcome.record))
    for name, state in dict(outcome.record.details.get("copies") or {}).items():
        typer.echo(f"  copy to {name}: {state}")
    if outcome.error is not None:
        raise outcome.error


@app.command("init-repos")
def init_repos(
    create_passwords: bool = typer.Option(
        False, "--create-passwords", help="Generate a random password for a repository whose secret is missing."
    ),
) -> None:
    """Initialise every configured restic repository (existing ones are left alone)."""
    with _service() as (_platform, service):
        results = service.init_repositories(create_passwords=create_passwords, actor=_actor())
    for name, state in results.items():
        if name.endswith(".password"):
            typer.echo(f"{name[: -len('.password')]}: generated a new password in the secret store; escrow it now")
        else:
            typer.echo(f"{name}: {state}")


@app.command("run")
def run(
    job: str = typer.Argument(..., help="Job name from [[backup.jobs]]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Back up JOB now (for systemd timers or cron); exit non-zero with the error code when it fails."""
    with _service() as (_platform, service):
        printer = None if quiet else ProgressPrinter(job)
        try:
            outcome = service.run_backup(job, trigger="cli", actor=_actor(), progress=printer)
        finally:
            if printer is not None:
                printer.finish()
    _conclude(outcome)


@app.command("check")
def check(
    job: str = typer.Argument(..., help="Job name; its primary and copy repositories are checked."),
    read_data: bool = typer.Option(False, "--read-data", help="Read back every pack (slow; finds corrupted data)."),
    read_data_subset: str | None = typer.Option(
        None, "--read-data-subset", help="Read back part of the data: n/t (e.g. 3/7) or a percentage (10%)."
    ),
) -> None:
    """Check the job's repositories with `restic check`."""
    with _service() as (_platform, service):
        outcome = service.run_check(
            job, read_data=read_data, read_data_subset=read_data_subset, trigger="cli", actor=_actor()
        )
    _conclude(outcome)


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="JSON instead of text.")) -> None:
    """Each job: schedule, next run, last run and last success."""
    with _service() as (_platform, service):
        statuses = service.status()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "job": s.name,
                        "repository": s.repository,
                        "copy_to": list(s.copy_to),
                        "schedule": s.schedule,
                        "next_run_at": isoformat_utc(s.next_run_at) if s.next_run_at else None,
                        "running_on": s.running_on,
                        "last_run": s.last_run.to_json() if s.last_run else None,
                        "last_success": s.last_success.to_json() if s.last_success else None,
                        "last_check": s.last_check.to_json() if s.last_check else None,
                    }
                    for s in statuses
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    if not statuses:
        typer.echo("no backup jobs are configured ([[backup.jobs]])")
    for s in statuses:
        typer.echo(f"{s.name}: {s.repository} -> {', '.join(s.copy_to) or 'no copies'}")
        typer.echo(
            f"  schedule: {s.schedule or 'manual'}"
            + (f", next {isoformat_utc(s.next_run_at)}" if s.next_run_at else "")
        )
        if s.check_schedule:
            subset = f", reading 1/{s.read_data_subset_days} of the data" if s.read_data_subset_days else ""
            typer.echo(f"  check: {s.check_schedule}{subset}")
        if s.running_on:
            typer.echo(f"  running now on {s.running_on}")
        last = s.last_run
        typer.echo(
            "  last run: "
            + (
                f"{last.result} at {isoformat_utc(last.finished_at)}"
                + (f" [{last.error_code}]" if last.error_code else "")
                if last
                else "never"
            )
        )
        typer.echo(
            "  last success: "
            + (
                f"{isoformat_utc(s.last_success.finished_at)}, snapshot {s.last_success.snapshot_id}"
                if s.last_success
                else "never"
            )
        )


@app.command("list")
def list_runs(
    job: str | None = typer.Option(None, "--job", help="Only this job."),
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="How many runs (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """The run history, newest first."""
    with _service() as (_platform, service):
        records = service.list_runs(job=job, limit=limit)
    for record in records:
        if as_json:
            typer.echo(json.dumps(record.to_json(), ensure_ascii=False))
            continue
        typer.echo(
            f"{record.id}\t{isoformat_utc(record.started_at)}\t{record.job}\t{record.kind}\t{record.result}\t"
            f"{record.snapshot_id or '-'}\t{record.duration_seconds:.1f}s\t{_size(record.bytes_added)}\t"
            f"{record.error_code or ''}"
        )


@app.command("snapshots")
def snapshots(
    repository: str = typer.Argument(..., help="Repository name from [[backup.repositories]]."),
    job: str | None = typer.Option(None, "--job", help="Only this job's snapshots."),
) -> None:
    """List the Hengxin snapshots in a repository."""
    with _service() as (_platform, service):
        found = service.snapshots(repository, job=job)
    for snapshot in found:
        typer.echo(
            f"{snapshot.short_id}\t{isoformat_utc(snapshot.time)}\t{snapshot.hostname}\t{','.join(snapshot.tags)}"
        )


@app.command("restore")
def restore(
    job: str = typer.Argument(..., help="Job whose snapshot to restore."),
    target: Path = typer.Argument(..., help="An empty directory; files land at TARGET/<original absolute path>."),
    snapshot: str = typer.Option("latest", "--snapshot", help="Snapshot ID (or latest)."),
    repository: str | None = typer.Option(None, "--repository", help="Restore from this repository (a copy)."),
) -> None:
    """Restore a snapshot into TARGET and verify every file against the snapshot's manifest."""
    if target.exists() and any(target.iterdir()):
        raise ConfigurationError(f"{target} is not empty")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _service() as (_platform, service):
        manifest = service.restore(job, target, snapshot=snapshot, repository=repository)
    head = f", audit head {manifest.audit_head.sequence}" if manifest.audit_head else ""
    typer.echo(f"restored {len(manifest.files)} files into {target}; all match the manifest{head}")

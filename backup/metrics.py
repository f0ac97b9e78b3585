"""Prometheus text exposition (format 0.0.4) of the backup run history, written by hand.

The numbers come from the ``backup_runs`` table, not from process memory, so
every node serving the same database reports the same values and a restart
does not reset the counters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class JobMetrics:
    """What /metrics reports for one job; timestamps are ``None`` when there was no such run."""

    job: str
    last_run_at: dt.datetime | None
    last_run_succeeded: bool | None
    last_success_at: dt.datetime | None
    last_duration_seconds: float | None
    last_bytes_added: int | None
    last_bytes_processed: int | None
    last_files: int | None
    runs_total: int
    failures_total: int
    check_last_success_at: dt.datetime | None
    check_failures_total: int


_METRICS: tuple[tuple[str, str, str], ...] = (
    (
        "hengxin_backup_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the end of the job's last successful backup (0: never).",
    ),
    (
        "hengxin_backup_last_run_timestamp_seconds",
        "gauge",
        "Unix time of the end of the job's last backup run (0: never).",
    ),
    (
        "hengxin_backup_last_run_success",
        "gauge",
        "1 if the job's last backup run succeeded, 0 if it failed or never ran.",
    ),
    ("hengxin_backup_last_duration_seconds", "gauge", "Duration of the job's last backup run."),
    (
        "hengxin_backup_last_bytes_added",
        "gauge",
        "Bytes the job's last backup added to the repository (after deduplication).",
    ),
    ("hengxin_backup_last_bytes_processed", "gauge", "Bytes the job's last backup read from its sources."),
    ("hengxin_backup_last_files", "gauge", "Files in the job's last backup."),
    ("hengxin_backup_runs_total", "counter", "Backup runs of the job in the run history."),
    ("hengxin_backup_failures_total", "counter", "Failed backup runs of the job in the run history."),
    (
        "hengxin_backup_check_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the end of the last successful repository check of the job (0: never).",
    ),
    ("hengxin_backup_check_failures_total", "counter", "Failed repository checks of the job in the run history."),
)


def escape_label_value(value: str) -> str:
    """Escape a label value as the exposition format requires (backslash, double quote, line feed)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _timestamp(moment: dt.datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    return text if "e" in text or "." in text or "inf" in text or "nan" in text else text + ".0"


def _values(job: JobMetrics) -> Sequence[float | int]:
    return (
        _timestamp(job.last_success_at),
        _timestamp(job.last_run_at),
        1 if job.last_run_succeeded else 0,
        job.last_duration_seconds or 0.0,
        job.last_bytes_added or 0,
        job.last_bytes_processed or 0,
        job.last_files or 0,
        job.runs_total,
        job.failures_total,
        _timestamp(job.check_last_success_at),
        job.check_failures_total,
    )


def render_metrics(jobs: Iterable[JobMetrics]) -> str:
    """The exposition text: a HELP and a TYPE line per metric, then one sample per job."""
    rows = [(job.job, _values(job)) for job in sorted(jobs, key=lambda j: j.job)]
    lines: list[str] = []
    for index, (name, kind, help_text) in enumerate(_METRICS):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for job_name, values in rows:
            lines.append(f'{name}{{job="{escape_label_value(job_name)}"}} {_number(values[index])}')
    return "\n".join(lines) + "\n"

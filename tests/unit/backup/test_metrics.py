"""The hand-written Prometheus exposition text."""

from __future__ import annotations

import datetime as dt
import re

from backup.metrics import JobMetrics, escape_label_value, render_metrics

LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*\{job="(?:[^"\\\n]|\\[\\"n])*"\} [0-9.e+-]+$')


def sample(job: str, **changes: object) -> JobMetrics:
    values: dict[str, object] = dict(
        job=job,
        last_run_at=dt.datetime(2026, 11, 23, 2, 31, tzinfo=dt.UTC),
        last_run_succeeded=True,
        last_success_at=dt.datetime(2026, 11, 23, 2, 31, tzinfo=dt.UTC),
        last_duration_seconds=61.5,
        last_bytes_added=1234,
        last_bytes_processed=99999,
        last_files=42,
        runs_total=10,
        failures_total=2,
        check_last_success_at=None,
        check_failures_total=0,
    )
    values.update(changes)
    return JobMetrics(**values)  # type: ignore[arg-type]


def test_every_metric_has_help_and_type_and_one_sample_per_job() -> None:
    text = render_metrics([sample("weekly"), sample("nightly", last_run_succeeded=False, last_success_at=None)])

    assert text.endswith("\n")
    names = re.findall(r"^# TYPE (\S+) (gauge|counter)$", text, re.M)
    assert len(names) == 11
    assert all(name.endswith("_total") == (kind == "counter") for name, kind in names)
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(samples) == 22 and all(LINE.match(line) for line in samples)
    assert 'hengxin_backup_last_success_timestamp_seconds{job="weekly"} 1795401060.0' in samples
    assert 'hengxin_backup_last_success_timestamp_seconds{job="nightly"} 0.0' in samples
    assert 'hengxin_backup_last_run_success{job="nightly"} 0' in samples
    assert 'hengxin_backup_failures_total{job="weekly"} 2' in samples
    assert 'hengxin_backup_last_duration_seconds{job="weekly"} 61.5' in samples
    # Jobs in a stable order.
    assert samples.index('hengxin_backup_failures_total{job="nightly"} 2') < samples.index(
        'hengxin_backup_failures_total{job="weekly"} 2'
    )


def test_label_values_are_escaped() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    text = render_metrics([sample('odd"name')])
    assert 'job="odd\\"name"' in text


def test_no_jobs_still_declares_the_metrics() -> None:
    text = render_metrics([])
    assert text.count("# TYPE ") == 11 and "{" not in text

"""The scheduler's decision of which slots are due."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from backup.schedule import CronSchedule
from backup.scheduler import BackupScheduler


class Jobs:
    zone = ZoneInfo("Asia/Shanghai")
    node = "test"

    def scheduled(self) -> list[tuple[str, str, CronSchedule]]:
        return [
            ("backup", "nightly", CronSchedule.parse("30 2 * * *")),
            ("check", "nightly", CronSchedule.parse("@hourly")),
        ]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(dt.UTC)


def test_a_slot_is_due_once_when_its_time_has_come_and_a_late_tick_runs_one_missed_slot() -> None:
    scheduler = BackupScheduler(Jobs(), interval=1)  # type: ignore[arg-type]

    assert scheduler.due(at("2026-11-23T02:29:50")) == []  # the first call only arms the schedules
    assert scheduler.due(at("2026-11-23T02:29:59")) == []
    assert scheduler.due(at("2026-11-23T02:30:05")) == [("backup", "nightly", at("2026-11-23T02:30:00"))]
    assert scheduler.due(at("2026-11-23T02:30:20")) == []
    assert scheduler.due(at("2026-11-23T03:00:01")) == [("check", "nightly", at("2026-11-23T03:00:00"))]
    # Three days asleep: one run now for the slot that came first, none for the ones in between.
    due = scheduler.due(at("2026-11-26T12:00:00"))
    assert due == [("backup", "nightly", at("2026-11-24T02:30:00")), ("check", "nightly", at("2026-11-23T04:00:00"))]
    assert scheduler.due(at("2026-11-26T12:00:10")) == []

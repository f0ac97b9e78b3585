"""Cron expressions: parsing, firing times in a time zone, DST, and the rolling read-data subset."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from backup.errors import BackupConfigurationError
from backup.schedule import CronSchedule, read_data_subset

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def at(text: str, zone: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone)


def firings(expression: str, start: dt.datetime, count: int, zone: dt.tzinfo = UTC) -> list[str]:
    schedule = CronSchedule.parse(expression)
    found, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment, zone)
        found.append(moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %a"))
    return found


def test_daily_job_fires_at_the_local_wall_clock_time_in_utc() -> None:
    schedule = CronSchedule.parse("30 2 * * *")
    moment = schedule.next_after(at("2026-11-22T12:00:00"), SHANGHAI)
    assert moment == at("2026-11-22T18:30:00")  # 02:30 on the 23rd in Shanghai
    assert moment.tzinfo is UTC


def test_next_after_is_strictly_after() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    assert schedule.next_after(at("2026-01-01T10:00:00"), UTC) == at("2026-01-01T11:00:00")
    assert schedule.next_after(at("2026-01-01T09:59:59.999"), UTC) == at("2026-01-01T10:00:00")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            "*/20 9-10 * * *",
            ["2026-03-02 09:00 Mon", "2026-03-02 09:20 Mon", "2026-03-02 09:40 Mon", "2026-03-02 10:00 Mon"],
        ),
        (
            "0 3 * * mon-fri",
            ["2026-03-02 03:00 Mon", "2026-03-03 03:00 Tue", "2026-03-04 03:00 Wed", "2026-03-05 03:00 Thu"],
        ),
        (
            "0 0 1,15 * *",
            ["2026-03-15 00:00 Sun", "2026-04-01 00:00 Wed", "2026-04-15 00:00 Wed", "2026-05-01 00:00 Fri"],
        ),
        (
            "5/20 0 * * *",
            ["2026-03-02 00:05 Mon", "2026-03-02 00:25 Mon", "2026-03-02 00:45 Mon", "2026-03-03 00:05 Tue"],
        ),
        (
            "0 12 * jan,JUL sun",
            ["2026-07-05 12:00 Sun", "2026-07-12 12:00 Sun", "2026-07-19 12:00 Sun", "2026-07-26 12:00 Sun"],
        ),
        ("0 0 * * 7", ["2026-03-08 00:00 Sun", "2026-03-15 00:00 Sun", "2026-03-22 00:00 Sun", "2026-03-29 00:00 Sun"]),
        ("@weekly", ["2026-03-08 00:00 Sun", "2026-03-15 00:00 Sun", "2026-03-22 00:00 Sun", "2026-03-29 00:00 Sun"]),
        ("@monthly", ["2026-04-01 00:00 Wed", "2026-05-01 00:00 Fri", "2026-06-01 00:00 Mon", "2026-07-01 00:00 Wed"]),
    ],
)
def test_fields_lists_ranges_steps_names_and_macros(expression: str, expected: list[str]) -> None:
    assert firings(expression, at("2026-03-01T23:59:00"), 4) == expected


def test_day_of_month_and_weekday_both_restricted_means_either() -> None:
    # Vixie cron: the 13th of each month and every Friday.
    assert firings("0 0 13 * fri", at("2026-03-01T00:00:00"), 4) == [
        "2026-03-06 00:00 Fri",
        "2026-03-13 00:00 Fri",
        "2026-03-20 00:00 Fri",
        "2026-03-27 00:00 Fri",
    ]
    assert firings("0 0 13 * fri", at("2026-03-28T00:00:00"), 2) == ["2026-04-03 00:00 Fri", "2026-04-10 00:00 Fri"]
    # A weekday field starting with "*" (even "*/2") makes both rules apply, as in Vixie cron:
    # the 13th, and only when it falls on Sunday, Tuesday, Thursday or Saturday.
    assert firings("0 0 13 * */2", at("2026-03-01T00:00:00"), 2) == ["2026-06-13 00:00 Sat", "2026-08-13 00:00 Thu"]


def test_february_29_waits_for_a_leap_year() -> None:
    assert firings("0 0 29 2 *", at("2026-03-01T00:00:00"), 1) == ["2028-02-29 00:00 Tue"]


def test_a_time_skipped_by_dst_does_not_fire_and_a_repeated_one_fires_once() -> None:
    # Europe/Berlin: 2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00.
    assert firings("30 2 * * *", at("2026-03-28T12:00:00", BERLIN), 2, BERLIN) == [
        "2026-03-30 02:30 Mon",
        "2026-03-31 02:30 Tue",
    ]
    autumn = firings("30 2 * * *", at("2026-10-24T12:00:00", BERLIN), 2, BERLIN)
    assert autumn == ["2026-10-25 02:30 Sun", "2026-10-26 02:30 Mon"]
    schedule = CronSchedule.parse("30 2 * * *")
    first = schedule.next_after(at("2026-10-24T12:00:00", BERLIN), BERLIN)
    assert first == at("2026-10-25T00:30:00")  # the first 02:30 (CEST, UTC+2)
    assert schedule.next_after(first, BERLIN) == at("2026-10-26T01:30:00")  # not the second 02:30 an hour later


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "expected 5 fields"),
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute 60 is outside 0-59"),
        ("* 24 * * *", "hour 24"),
        ("* * 0 * *", "day of month 0"),
        ("* * * 13 *", "month 13"),
        ("* * * * 8", "day of week 8"),
        ("* * * foo *", "'foo' is not a valid month"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "not a valid minute item"),
        ("@fortnightly", "unknown macro"),
        ("0 0 31 2 *", "no month has such a day"),
    ],
)
def test_invalid_expressions_name_the_problem(expression: str, fragment: str) -> None:
    with pytest.raises(BackupConfigurationError) as caught:
        CronSchedule.parse(expression)
    assert caught.value.code == "backup.configuration_invalid"
    assert fragment in caught.value.detail


def test_the_read_data_subset_rotates_daily_and_covers_every_part() -> None:
    start = at("2026-05-01T20:00:00")  # 04:00 on 2 May in Shanghai
    subsets = [read_data_subset(start + dt.timedelta(days=day), SHANGHAI, 7) for day in range(14)]
    assert all(s.endswith("/7") for s in subsets)
    assert {s for s in subsets[:7]} == {f"{n}/7" for n in range(1, 8)}
    assert subsets[7:] == subsets[:7]
    assert read_data_subset(start, SHANGHAI, 1) == "1/1"
    # Local days: two moments on the same Shanghai day give the same subset.
    assert read_data_subset(at("2026-05-01T16:01:00"), SHANGHAI, 7) == read_data_subset(start, SHANGHAI, 7)

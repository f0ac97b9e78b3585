"""Retention policies evaluated as restic 0.14 does (the real restic is compared in tests/integration/backup)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from backup.retention import SnapshotTime, apply_policy, keeps_all_with_new, parse_time

BEIJING = timezone(timedelta(hours=8))


def snapshots(*moments: datetime) -> list[SnapshotTime]:
    return [SnapshotTime(f"s{number}", moment) for number, moment in enumerate(moments)]


def ids(items: list[SnapshotTime]) -> list[str]:
    return [item.id for item in items]


def test_restic_times_keep_their_offset_and_nanoseconds_are_cut_to_microseconds() -> None:
    moment = parse_time("2026-11-20T23:30:00.123456789+08:00")

    assert moment == datetime(2026, 11, 20, 23, 30, 0, 123456, tzinfo=BEIJING)
    assert moment.utcoffset() == timedelta(hours=8)
    assert parse_time("2026-11-22T08:47:45.596460005Z") == datetime(2026, 11, 22, 8, 47, 45, 596460, tzinfo=UTC)
    assert parse_time(SnapshotTime("x", moment).to_json()[1]) == moment
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_daily_keeps_the_newest_of_each_day_and_removes_the_rest() -> None:
    day = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    items = snapshots(day, day + timedelta(hours=5), day + timedelta(days=1), day + timedelta(days=2))

    kept, removed = apply_policy(items, {"keep_daily": 7})

    assert ids(kept) == ["s3", "s2", "s1"] and ids(removed) == ["s0"]


def test_a_rule_stops_keeping_once_its_count_is_used_up_and_rules_add_up() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    items = snapshots(*(start + timedelta(days=n) for n in range(20)))

    kept, removed = apply_policy(items, {"daily": 3, "weekly": 3})

    # s0 is Thursday 2026-01-01.  Daily: the 20th, 19th, 18th.  Weekly: the newest of ISO weeks 4 (the 20th),
    # 3 (Sunday the 18th, already kept) and 2 (Sunday the 11th).
    assert ids(kept) == ["s19", "s18", "s17", "s10"]
    assert len(removed) == 16


def test_buckets_use_each_snapshot_s_own_offset() -> None:
    # 23:30 in Beijing on the 20th and 00:30 UTC on the 21st are the same instant-day in neither zone.
    first = datetime(2026, 11, 20, 23, 30, tzinfo=BEIJING)
    second = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # later instant, but the 20th in UTC as well

    kept, removed = apply_policy(snapshots(first, second), {"daily": 5})

    assert ids(kept) == ["s1"] and ids(removed) == ["s0"]


def test_keep_last_counts_snapshots_and_an_empty_policy_keeps_everything() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    items = snapshots(*(start + timedelta(seconds=n) for n in range(4)))

    assert ids(apply_policy(items, {"last": 2})[1]) == ["s1", "s0"]
    assert ids(apply_policy(items, {})[0]) == ["s3", "s2", "s1", "s0"]
    assert ids(apply_policy(items, {"daily": 0})[1]) == []
    with pytest.raises(ValueError):
        apply_policy(items, {"fortnightly": 1})
    with pytest.raises(ValueError):
        apply_policy(items, {"last": -1})


def test_a_new_snapshot_in_fresh_buckets_keeps_all_and_is_recorded_at_the_earliest_time() -> None:
    known = snapshots(datetime(2026, 3, 1, 2, 30, tzinfo=UTC))
    earliest = datetime(2026, 3, 2, 2, 30, tzinfo=UTC)

    kept = keeps_all_with_new(known, "new", earliest, earliest + timedelta(seconds=40), {"keep_daily": 7})

    assert kept is not None and ids(kept) == ["new", "s0"] and kept[0].time == earliest


def test_no_decision_when_the_policy_removes_something_or_the_time_is_uncertain() -> None:
    day = datetime(2026, 3, 2, 2, 30, tzinfo=UTC)
    policy = {"keep_daily": 7, "keep_weekly": 5}

    same_day = snapshots(day)
    assert keeps_all_with_new(same_day, "new", day + timedelta(hours=1), day + timedelta(hours=1), policy) is None
    # The backup ran across midnight: restic's time could be on either day.
    late = datetime(2026, 3, 1, 23, 59, 50, tzinfo=UTC)
    assert keeps_all_with_new([], "new", late, late + timedelta(seconds=20), policy) is None
    # A known snapshot not older than the new one (another node's clock): the order is not certain.
    assert keeps_all_with_new(snapshots(day), "new", day, day, {"keep_last": 5}) is None
    # keep_last only orders snapshots: crossing midnight does not matter to it.
    assert keeps_all_with_new([], "new", late, late + timedelta(seconds=20), {"keep_last": 1}) is not None

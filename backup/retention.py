"""Retention policies evaluated the way restic 0.14 evaluates them, to know when ``forget`` has nothing to do.

After every backup the service applies the job's ``keep_*`` policy with ``restic forget --prune``.  That call
opens the repository (key derivation, index, snapshot list) and takes an exclusive lock, which costs about as
much as an unchanged backup and blocks other writers meanwhile.  When the service already knows every snapshot
of the job in the repository (the ones the previous run kept, plus the one just made) it can decide itself that
the policy keeps them all and skip the call.  When it does not know, or the policy might remove anything, it
runs ``forget`` as before and restic decides.

:func:`apply_policy` is restic's ``ApplyPolicy`` (``internal/restic/snapshot_policy.go``) for the ``keep_*``
counts: snapshots newest first; a rule with count *n* keeps a snapshot when its bucket (hour, day, ISO week,
month or year of the snapshot's time, in the time's own UTC offset; every snapshot for ``last``) differs from
the bucket of the last snapshot that rule kept, while the rule still has count left.  A snapshot kept by no
rule is removed.  An empty policy keeps everything.  ``tests/integration/backup/test_retention.py`` checks the
decisions against the real restic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")

_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class SnapshotTime:
    """A snapshot as retention sees it: its ID and its time in the UTC offset it was recorded with."""

    id: str
    time: datetime

    def to_json(self) -> list[str]:
        return [self.id, format_time(self.time)]

    @classmethod
    def from_json(cls, value: object) -> SnapshotTime:
        """Read ``[id, time]``; raises ValueError when it is not that."""
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise ValueError("a retained snapshot is [id, time]")
        return cls(value[0], parse_time(value[1]))


def parse_time(text: str) -> datetime:
    """Parse a restic time (RFC 3339, up to nine fractional digits), keeping its UTC offset.

    Microseconds are kept; restic's extra digits do not change any bucket or the order of snapshots made
    more than a microsecond apart.  Raises ValueError.
    """
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a restic time: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    micro = int((match.group(7) or "").ljust(6, "0")[:6])
    zone = match.group(8)
    if zone == "Z":
        tz: timezone = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def format_time(moment: datetime) -> str:
    """The inverse of :func:`parse_time` (ISO 8601 with the offset)."""
    return moment.isoformat()


def _bucket(rule: str) -> Callable[[datetime, int], int]:
    if rule == "last":
        return lambda _moment, number: number
    if rule == "hourly":
        return lambda m, _n: m.year * 1_000_000 + m.month * 10_000 + m.day * 100 + m.hour
    if rule == "daily":
        return lambda m, _n: m.year * 10_000 + m.month * 100 + m.day
    if rule == "weekly":
        return lambda m, _n: m.isocalendar()[0] * 100 + m.isocalendar()[1]
    if rule == "monthly":
        return lambda m, _n: m.year * 100 + m.month
    if rule == "yearly":
        return lambda m, _n: m.year
    raise ValueError(f"unknown retention rule {rule!r}")


@dataclass
class _Rule:
    left: int
    bucket: Callable[[datetime, int], int]
    last: int | None = None


def apply_policy(
    snapshots: Sequence[SnapshotTime], policy: Mapping[str, int]
) -> tuple[list[SnapshotTime], list[SnapshotTime]]:
    """Return (kept, removed), each newest first, as restic 0.14's ``forget --keep-*`` decides them.

    ``policy`` maps rule names (``last``, ``hourly``, ``daily``, ``weekly``, ``monthly``, ``yearly``; an
    optional ``keep_`` prefix is ignored) to counts.  Raises ValueError for an unknown rule or a negative count.
    """
    counts: dict[str, int] = {}
    for name, count in policy.items():
        rule = name.removeprefix("keep_")
        if rule not in RULES or isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"invalid retention rule {name}={count!r}")
        counts[rule] = count
    ordered = sorted(snapshots, key=lambda s: s.time, reverse=True)
    if not any(counts.values()):
        return ordered, []
    rules = [_Rule(counts[name], _bucket(name)) for name in RULES if counts.get(name)]
    kept: list[SnapshotTime] = []
    removed: list[SnapshotTime] = []
    for number, snapshot in enumerate(ordered):
        keep = False
        for state in rules:
            if state.left > 0:
                value = state.bucket(snapshot.time, number)
                if value != state.last:
                    keep = True
                    state.last = value
                    state.left -= 1
        (kept if keep else removed).append(snapshot)
    return kept, removed


def keeps_all_with_new(
    known: Sequence[SnapshotTime], new_id: str, earliest: datetime, latest: datetime, policy: Mapping[str, int]
) -> list[SnapshotTime] | None:
    """The snapshots to record when ``policy`` certainly keeps every known one plus the new one; else None.

    The new snapshot's exact time is restic's; it lies between ``earliest`` (just before restic started) and
    ``latest`` (when it finished).  The answer is given only when it is the same for any time in between: the
    new snapshot is newer than every known one, and ``earliest`` and ``latest`` fall in the same hour, day,
    week, month and year for every rule the policy uses.  The recorded time of the new snapshot is
    ``earliest``, which lies in the same buckets as its real time.
    """
    earliest = earliest.astimezone(UTC)
    latest = latest.astimezone(UTC)
    if latest < earliest or any(snapshot.time >= earliest for snapshot in known):
        return None
    for name, count in policy.items():
        rule = name.removeprefix("keep_")
        if count and rule != "last" and _bucket(rule)(earliest, 0) != _bucket(rule)(latest, 0):
            return None
    candidates = [*known, SnapshotTime(new_id, earliest)]
    kept, removed = apply_policy(candidates, policy)
    if removed:
        return None
    return kept

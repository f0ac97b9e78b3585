"""Cron schedules: the classic five-field syntax, evaluated in a time zone.

A :class:`CronSchedule` is parsed once from text such as ``"30 2 * * *"``
(minute, hour, day of month, month, day of week) and answers one question:
:meth:`CronSchedule.next_after`, the first firing time strictly after a given
moment, as timezone-aware UTC.  Times are matched against the wall clock of
the zone passed in (``[instance] timezone``).

Syntax, as in Vixie cron:

* each field is ``*``, a number, a range ``a-b``, a list ``a,b,c`` of those,
  and any of them with a step ``/n`` (``*/15``, ``0-30/10``, ``5/20`` = 5 to
  the field's maximum in steps of 20);
* months and weekdays also take English names (``jan``-``dec``, ``sun``-``sat``,
  any case); Sunday is 0 or 7;
* when both day of month and day of week are restricted (neither starts with
  ``*``), a day matches if *either* matches (``0 0 1 * mon`` = the 1st and
  every Monday); otherwise both must;
* the macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``,
  ``@daily`` (``@midnight``) and ``@hourly``.

Daylight saving time: a wall-clock time that does not exist that day (skipped
by a spring-forward change) does not fire; a time that occurs twice (autumn)
fires once, at its first occurrence.  China has no DST; zones that have it
behave as described.

Parsing is pure and raises :class:`backup.errors.BackupConfigurationError`
naming the field at fault.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from backup.errors import BackupConfigurationError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_WEEKDAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _WEEKDAYS),
)
_SEARCH_YEARS = 8
"""How far :meth:`CronSchedule.next_after` looks ahead: far enough for "29 February" and a leap year."""

_ITEM = re.compile(r"^(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


def _invalid(expression: str, message: str) -> BackupConfigurationError:
    return BackupConfigurationError(
        f"invalid schedule {expression!r}: {message}",
        detail_zh=f"无效的计划表达式 {expression!r}：{message}",
        schedule=expression,
    )


def _value(expression: str, field: _Field, text: str) -> int:
    if text.isdigit():
        number = int(text)
    elif text in field.names:
        number = field.names[text]
    else:
        raise _invalid(expression, f"{text!r} is not a valid {field.name}")
    if not field.low <= number <= field.high:
        raise _invalid(expression, f"{field.name} {number} is outside {field.low}-{field.high}")
    return number


def _parse_field(expression: str, field: _Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise _invalid(expression, f"{item!r} is not a valid {field.name} item")
        part, step_text = match.group("range"), match.group("step")
        step = int(step_text) if step_text is not None else 1
        if step < 1:
            raise _invalid(expression, f"the step in {item!r} must be at least 1")
        if part == "*":
            low, high = field.low, field.high
        elif "-" in part:
            first, last = part.split("-", 1)
            low, high = _value(expression, field, first), _value(expression, field, last)
            if low > high:
                raise _invalid(expression, f"the range {part!r} runs backwards")
        else:
            low = _value(expression, field, part)
            # "5/20" means 5 to the end in steps of 20; a plain "5" is just 5.
            high = field.high if step_text is not None else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression.  Build it with :meth:`parse`."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse five fields or a macro; raises :class:`BackupConfigurationError` naming the bad field."""
        text = expression.strip().lower()
        text = MACROS.get(text, text)
        if text.startswith("@"):
            raise _invalid(expression, f"unknown macro; use one of {', '.join(sorted(MACROS))}")
        parts = text.split()
        if len(parts) != 5:
            raise _invalid(expression, f"expected 5 fields (minute hour day month weekday), found {len(parts)}")
        minutes, hours, days, months, weekdays = (
            _parse_field(expression, field, part) for field, part in zip(_FIELDS, parts, strict=True)
        )
        weekdays = frozenset(day % 7 for day in weekdays)
        schedule = cls(
            expression=expression.strip(),
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=weekdays,
            days_restricted=not parts[2].startswith("*"),
            weekdays_restricted=not parts[4].startswith("*"),
        )
        if not any(schedule._month_can_match(month) for month in months):
            raise _invalid(expression, "no month has such a day")
        return schedule

    def _month_can_match(self, month: int) -> bool:
        if self.weekdays_restricted and not self.days_restricted:
            return True
        if self.weekdays_restricted and self.days_restricted:
            return True  # either rule may match
        longest = 29 if month == 2 else (30 if month in (4, 6, 9, 11) else 31)
        return any(day <= longest for day in self.days)

    def matches_date(self, day: dt.date) -> bool:
        """Whether the schedule fires on this calendar day (at some hour and minute)."""
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        weekday = day.isoweekday() % 7
        in_week = weekday in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def next_after(self, moment: dt.datetime, zone: ZoneInfo | dt.tzinfo) -> dt.datetime:
        """The first firing time strictly after ``moment``, as aware UTC.

        ``moment`` must be timezone-aware.  Raises
        :class:`BackupConfigurationError` if the schedule does not fire within
        eight years (which parsing already rules out in practice).
        """
        if moment.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware moment")
        local = moment.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + dt.timedelta(minutes=1)
        day = local.date()
        last_day = day + dt.timedelta(days=366 * _SEARCH_YEARS)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        while day <= last_day:
            if self.matches_date(day):
                for candidate in _wall_times(day, hours, minutes):
                    if candidate < local:
                        continue
                    found = _to_utc(candidate, zone)
                    if found is not None and found > moment:
                        return found
            day += dt.timedelta(days=1)
        raise _invalid(self.expression, f"it does not fire within {_SEARCH_YEARS} years")

    def __str__(self) -> str:
        return self.expression


def _wall_times(day: dt.date, hours: Iterable[int], minutes: list[int]) -> Iterable[dt.datetime]:
    for hour in hours:
        for minute in minutes:
            yield dt.datetime(day.year, day.month, day.day, hour, minute)


def _to_utc(wall: dt.datetime, zone: ZoneInfo | dt.tzinfo) -> dt.datetime | None:
    """The UTC time of a wall-clock time (first occurrence), or ``None`` if it does not exist in ``zone``."""
    aware = wall.replace(tzinfo=zone, fold=0)
    utc = aware.astimezone(dt.UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return utc


def read_data_subset(moment: dt.datetime, zone: ZoneInfo | dt.tzinfo, days: int) -> str:
    """The ``--read-data-subset`` for a check at ``moment``: ``n/days``, n advancing by one each local day.

    Over any ``days`` consecutive days every subset 1..days is read once, so
    every pack is read back in that period.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    ordinal = moment.astimezone(zone).date().toordinal()
    return f"{ordinal % days + 1}/{days}"

"""Time, injected: every domain function takes a clock so tests can freeze it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class FrozenClock:
    """A clock that returns a fixed time until moved; for tests and drills."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware time")
        self.now = start.astimezone(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def isoformat_utc(moment: dt.datetime) -> str:
    """RFC 3339 text with microseconds and a 'Z' suffix; the one time format stored in hashed records."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: Hengxin stores only timezone-aware UTC times")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> dt.datetime:
    """Parse RFC 3339 text into a timezone-aware UTC datetime."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)

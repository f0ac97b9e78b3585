"""Clock discipline for the TSA: is the system clock within the declared accuracy?

A :class:`ClockMonitor` asks the configured NTP servers how far the local
clock is off.  The service layer calls :meth:`ClockMonitor.poll` periodically
(in a thread or task); the TSA calls :meth:`ClockMonitor.is_healthy` for every
request, which only reads an attribute.  While the clock is unhealthy the TSA
answers ``timeNotAvailable``.  The alert callback is called once per
transition: when the clock becomes unhealthy and when it recovers.

This is the only module that imports ``ntplib``.
"""

from __future__ import annotations

import enum
import logging
import socket
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import ntplib

from timestamp.errors import ClockUnavailable, TSAConfigurationError

logger = logging.getLogger(__name__)

_UNSYNCHRONISED_LEAP = 3  # leap indicator "alarm": the server's clock is not synchronised
_MAX_STRATUM = 15


class AlertSeverity(enum.StrEnum):
    """Severity passed to the alert callback."""

    CRITICAL = "critical"
    INFO = "info"


AlertCallback = Callable[[str, AlertSeverity], None]


class _State(enum.Enum):
    UNKNOWN = "unknown"  # before the first poll: not healthy, but no alert has been sent
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class NTPServer:
    """An NTP server address."""

    host: str
    port: int = 123

    @classmethod
    def parse(cls, value: str) -> NTPServer:
        """Parse ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``.

        Raises :class:`TSAConfigurationError` for an empty host or a bad port.
        """
        host, port = value.strip(), "123"
        if host.startswith("["):
            end = host.find("]")
            if end < 0:
                raise TSAConfigurationError(f"bad NTP server address {value!r}")
            host, rest = host[1:end], host[end + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise TSAConfigurationError(f"bad NTP server address {value!r}")
                port = rest[1:]
        elif host.count(":") == 1:
            host, port = host.split(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise TSAConfigurationError(f"bad NTP server address {value!r}", detail_zh=f"NTP 服务器地址无效：{value!r}")
        return cls(host, int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class NTPSample:
    """One server's answer: the clock offset (server minus local, seconds) and the
    bound on its error (half the round trip plus the server's root distance), or
    the reason there is no usable answer."""

    server: str
    offset: float | None = None
    error_bound: float | None = None
    stratum: int | None = None
    error: str | None = None

    @property
    def usable(self) -> bool:
        """Whether the server answered with a synchronised clock."""
        return self.offset is not None


# Asks one server; returns a sample and never raises.
NTPQuery = Callable[[NTPServer, float], NTPSample]


def query_ntp(server: NTPServer, timeout: float) -> NTPSample:
    """Ask ``server`` once with ntplib (NTPv4); network and protocol errors become ``error``.

    An unsynchronised server (leap indicator 3 or stratum outside 1..15) is not
    usable.
    """
    try:
        response = ntplib.NTPClient().request(server.host, version=4, port=server.port, timeout=timeout)
    except (ntplib.NTPException, OSError, socket.gaierror) as e:
        return NTPSample(str(server), error=f"{type(e).__name__}: {e}")
    if response.leap == _UNSYNCHRONISED_LEAP or not 1 <= response.stratum <= _MAX_STRATUM:
        return NTPSample(str(server), stratum=response.stratum, error="server clock is not synchronised")
    bound = abs(response.offset) + response.delay / 2 + response.root_delay / 2 + response.root_dispersion
    return NTPSample(str(server), offset=response.offset, error_bound=bound, stratum=response.stratum)


@dataclass(frozen=True)
class ClockStatus:
    """The monitor's view after a poll.

    ``offset`` is the last good offset in seconds (median over the servers that
    answered) and ``last_good`` the wall-clock time it was measured; ``reason``
    explains an unhealthy state.  Before the first poll the state is unknown and
    counts as unhealthy.
    """

    healthy: bool
    reason: str
    offset: float | None = None
    last_good: datetime | None = None
    checked_at: datetime | None = None
    samples: tuple[NTPSample, ...] = ()


class ClockMonitor:
    """Watches the system clock against NTP servers.

    ``servers`` are ``host[:port]`` strings or :class:`NTPServer` values.  The
    clock is healthy when the servers that answered put the local clock within
    ``accuracy`` seconds (the TSA's declared accuracy; compared with the offset
    plus the measurement's error bound), and stays healthy without answers for
    at most ``max_silence`` seconds after the last good answer.  ``alert(message,
    severity)`` is called once when the clock becomes unhealthy (CRITICAL) and
    once when it recovers (INFO); its exceptions are logged and swallowed.

    Raises :class:`TSAConfigurationError` for bad addresses or non-positive
    limits.
    """

    def __init__(
        self,
        servers: Sequence[str | NTPServer],
        *,
        accuracy: float,
        max_silence: float = 60.0,
        timeout: float = 1.0,
        alert: AlertCallback | None = None,
        query: NTPQuery = query_ntp,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if accuracy <= 0 or max_silence <= 0 or timeout <= 0:
            raise TSAConfigurationError(
                "clock accuracy, silence interval and timeout must be positive",
                detail_zh="时钟精度、静默间隔和超时必须为正数",
            )
        self._servers = self._parse_servers(servers)
        self.accuracy = accuracy
        self.max_silence = max_silence
        self.timeout = timeout
        self._alert = alert
        self._query = query
        self._monotonic = monotonic
        self._clock = clock
        self._lock = threading.Lock()
        self._last_good_monotonic: float | None = None
        self._last_offset: float | None = None
        self._last_good: datetime | None = None
        self._healthy = False
        self._state = _State.UNKNOWN
        self._status = ClockStatus(healthy=False, reason="the clock has not been checked yet")

    @staticmethod
    def _parse_servers(servers: Sequence[str | NTPServer]) -> tuple[NTPServer, ...]:
        parsed = tuple(s if isinstance(s, NTPServer) else NTPServer.parse(s) for s in servers)
        if not parsed:
            raise TSAConfigurationError("at least one NTP server is needed", detail_zh="至少需要一个 NTP 服务器")
        return parsed

    @property
    def servers(self) -> tuple[NTPServer, ...]:
        """The servers asked by :meth:`poll`."""
        return self._servers

    def set_servers(self, servers: Sequence[str | NTPServer]) -> None:
        """Replace the servers used from the next poll on (configuration reload).

        Raises :class:`TSAConfigurationError` for bad addresses.
        """
        self._servers = self._parse_servers(servers)

    def is_healthy(self) -> bool:
        """Whether the TSA may issue tokens now: no I/O, called for every request.

        Also false once ``max_silence`` has passed since the last good answer
        without any poll, so a stalled polling thread cannot leave the TSA
        issuing on an unchecked clock.
        """
        last_good = self._last_good_monotonic
        return self._healthy and last_good is not None and self._monotonic() - last_good <= self.max_silence

    @property
    def status(self) -> ClockStatus:
        """The status after the last poll."""
        return self._status

    def check(self) -> ClockStatus:
        """Return the status if healthy. Raises :class:`ClockUnavailable` otherwise."""
        status = self._status
        if not status.healthy:
            raise ClockUnavailable(status.reason, detail_zh="时间戳时钟未同步或偏差超出声明精度")
        return status

    def poll(self) -> ClockStatus:
        """Ask every server once, update the health flag and alert on a transition.

        Never raises for network problems: they make the clock unhealthy once
        ``max_silence`` has passed since the last good answer.
        """
        with self._lock:
            samples = tuple(self._query(server, self.timeout) for server in self._servers)
            now = self._monotonic()
            usable = [s for s in samples if s.usable]
            if usable:
                offset = statistics.median(s.offset for s in usable if s.offset is not None)
                bound = statistics.median(s.error_bound for s in usable if s.error_bound is not None)
                self._last_good_monotonic = now
                self._last_offset = offset
                self._last_good = self._clock()
                if bound <= self.accuracy:
                    healthy, reason = True, f"clock offset {offset:+.6f} s within {self.accuracy} s"
                else:
                    healthy, reason = (
                        False,
                        (
                            f"clock offset {offset:+.6f} s (error bound {bound:.6f} s) exceeds the declared "
                            f"accuracy of {self.accuracy} s"
                        ),
                    )
            elif self._last_good_monotonic is not None and now - self._last_good_monotonic <= self.max_silence:
                healthy = self._healthy
                reason = (
                    self._status.reason
                    if not healthy
                    else (
                        f"no NTP answer for {now - self._last_good_monotonic:.1f} s; last offset "
                        f"{self._last_offset:+.6f} s"
                    )
                )
            else:
                errors = "; ".join(f"{s.server}: {s.error}" for s in samples)
                silence = (
                    f"for {now - self._last_good_monotonic:.1f} s"
                    if self._last_good_monotonic is not None
                    else "since start"
                )
                healthy, reason = False, f"no NTP server answered {silence} ({errors})"

            self._status = ClockStatus(
                healthy=healthy,
                reason=reason,
                offset=self._last_offset,
                last_good=self._last_good,
                checked_at=self._clock(),
                samples=samples,
            )
            previous = self._state
            self._state = _State.HEALTHY if healthy else _State.UNHEALTHY
            self._healthy = healthy
            if self._state is not previous:
                if not healthy:
                    self._notify(f"TSA clock unhealthy, timestamping suspended: {reason}", AlertSeverity.CRITICAL)
                elif previous is _State.UNHEALTHY:
                    self._notify(f"TSA clock recovered, timestamping resumed: {reason}", AlertSeverity.INFO)
                else:
                    logger.info("TSA clock synchronised: %s", reason)
            return self._status

    def _notify(self, message: str, severity: AlertSeverity) -> None:
        if severity is AlertSeverity.CRITICAL:
            logger.error(message)
        else:
            logger.info(message)
        if self._alert is None:
            return
        try:
            self._alert(message, severity)
        except Exception:
            logger.exception("the clock alert callback failed")

"""ClockMonitor state machine with scripted NTP answers; real chronyd runs in tests/integration."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fixtures.chrony import free_udp_port
from timestamp.clock import AlertSeverity, ClockMonitor, NTPSample, NTPServer, query_ntp
from timestamp.errors import ClockUnavailable, TSAConfigurationError


class Script:
    """Answers per server, a settable monotonic clock and the alerts received."""

    def __init__(self) -> None:
        self.offsets: dict[str, float | None] = {}
        self.delay = 0.0
        self.now = 1000.0
        self.alerts: list[tuple[str, AlertSeverity]] = []

    def query(self, server: NTPServer, timeout: float) -> NTPSample:
        offset = self.offsets.get(str(server))
        if offset is None:
            return NTPSample(str(server), error="timed out")
        return NTPSample(str(server), offset=offset, error_bound=abs(offset) + self.delay / 2, stratum=1)

    def alert(self, message: str, severity: AlertSeverity) -> None:
        self.alerts.append((message, severity))

    def monitor(self, servers: tuple[str, ...] = ("ntp1:123",), **kwargs: object) -> ClockMonitor:
        options: dict[str, object] = {
            "accuracy": 1.0,
            "max_silence": 30.0,
            "alert": self.alert,
            "query": self.query,
            "monotonic": lambda: self.now,
        }
        options.update(kwargs)
        return ClockMonitor(servers, **options)  # type: ignore[arg-type]


@pytest.fixture
def script() -> Script:
    return Script()


def test_clock_is_unhealthy_until_the_first_good_poll(script: Script) -> None:
    monitor = script.monitor()
    assert not monitor.is_healthy()
    with pytest.raises(ClockUnavailable) as raised:
        monitor.check()
    assert raised.value.code == "timestamp.clock_unavailable"

    script.offsets["ntp1:123"] = 0.002
    status = monitor.poll()

    assert monitor.is_healthy() and status.healthy
    assert status.offset == pytest.approx(0.002)
    assert status.last_good is not None
    assert monitor.check() is status
    assert script.alerts == []  # the first synchronisation is not a recovery


def test_offset_beyond_accuracy_alerts_once_and_recovery_alerts_once(script: Script) -> None:
    monitor = script.monitor()
    script.offsets["ntp1:123"] = 0.0
    monitor.poll()

    script.offsets["ntp1:123"] = 7.0
    for _ in range(3):
        assert not monitor.poll().healthy
    assert not monitor.is_healthy()
    assert [s for _, s in script.alerts] == [AlertSeverity.CRITICAL]
    assert "exceeds" in script.alerts[0][0]

    script.offsets["ntp1:123"] = -0.01
    for _ in range(3):
        assert monitor.poll().healthy
    assert [s for _, s in script.alerts] == [AlertSeverity.CRITICAL, AlertSeverity.INFO]
    assert "recovered" in script.alerts[1][0]


def test_measurement_error_counts_against_the_accuracy(script: Script) -> None:
    monitor = script.monitor()
    script.offsets["ntp1:123"] = 0.5
    script.delay = 1.2  # the answer may be off by up to 0.6 s more
    assert not monitor.poll().healthy


def test_silence_is_tolerated_until_the_interval_passes(script: Script) -> None:
    monitor = script.monitor(max_silence=30.0)
    script.offsets["ntp1:123"] = 0.0
    monitor.poll()

    script.offsets["ntp1:123"] = None
    script.now += 29
    assert monitor.poll().healthy
    script.now += 2
    status = monitor.poll()

    assert not status.healthy
    assert "no NTP server answered for 31.0 s" in status.reason
    assert "timed out" in status.reason
    assert status.offset == 0.0  # the last good offset is kept
    assert [s for _, s in script.alerts] == [AlertSeverity.CRITICAL]


def test_no_answer_at_start_is_unhealthy_with_an_alert(script: Script) -> None:
    monitor = script.monitor()
    assert not monitor.poll().healthy
    assert [s for _, s in script.alerts] == [AlertSeverity.CRITICAL]


def test_unhealthy_offset_stays_unhealthy_while_servers_are_silent(script: Script) -> None:
    monitor = script.monitor()
    script.offsets["ntp1:123"] = 9.0
    monitor.poll()
    script.offsets["ntp1:123"] = None
    assert not monitor.poll().healthy
    assert len(script.alerts) == 1


def test_median_of_several_servers_outvotes_one_false_ticker(script: Script) -> None:
    monitor = script.monitor(("a", "b", "c"))
    script.offsets.update({"a:123": 0.01, "b:123": -0.02, "c:123": 40.0})
    status = monitor.poll()
    assert status.healthy
    assert status.offset == pytest.approx(0.01)
    assert len(status.samples) == 3


def test_servers_can_be_replaced(script: Script) -> None:
    monitor = script.monitor(("bad",))
    script.offsets.update({"bad:123": 5.0, "good:123": 0.0})
    assert not monitor.poll().healthy
    monitor.set_servers(["good"])
    assert monitor.servers == (NTPServer("good"),)
    assert monitor.poll().healthy
    assert [s for _, s in script.alerts] == [AlertSeverity.CRITICAL, AlertSeverity.INFO]


def test_failing_alert_callback_does_not_break_the_poll(script: Script) -> None:
    def broken(message: str, severity: AlertSeverity) -> None:
        raise RuntimeError("pager down")

    monitor = script.monitor(alert=broken)
    assert not monitor.poll().healthy


@pytest.mark.parametrize(
    ("text", "server"),
    [
        ("ntp.example.cn", NTPServer("ntp.example.cn", 123)),
        ("127.0.0.1:11123", NTPServer("127.0.0.1", 11123)),
        ("[::1]:124", NTPServer("::1", 124)),
        ("[::1]", NTPServer("::1", 123)),
    ],
)
def test_server_addresses_are_parsed(text: str, server: NTPServer) -> None:
    assert NTPServer.parse(text) == server


@pytest.mark.parametrize("text", ["", ":123", "host:0", "host:70000", "host:x", "[::1", "[::1]x"])
def test_bad_server_addresses_are_configuration_errors(text: str) -> None:
    with pytest.raises(TSAConfigurationError):
        NTPServer.parse(text)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: s.monitor(()),
        lambda s: s.monitor(accuracy=0),
        lambda s: s.monitor(max_silence=-1),
        lambda s: s.monitor(timeout=0),
    ],
)
def test_bad_monitor_configuration_is_refused(script: Script, make: Callable[[Script], ClockMonitor]) -> None:
    with pytest.raises(TSAConfigurationError):
        make(script)


def test_query_of_a_silent_port_returns_an_error_sample() -> None:
    sample = query_ntp(NTPServer("127.0.0.1", free_udp_port()), timeout=0.2)
    assert not sample.usable
    assert sample.error


def test_stalled_polling_cannot_keep_the_clock_healthy(script: Script) -> None:
    monitor = script.monitor(max_silence=30.0)
    script.offsets["ntp1:123"] = 0.0
    monitor.poll()
    assert monitor.is_healthy()

    script.now += 31  # nobody polled in the meantime

    assert not monitor.is_healthy()

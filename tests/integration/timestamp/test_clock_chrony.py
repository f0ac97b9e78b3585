"""Clock discipline against real chronyd servers on 127.0.0.1, one shifted with libfaketime."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.fixtures.chrony import ChronyServer
from tests.unit.timestamp.tsa_pki import TSAPKI
from timestamp.asn1 import TimeStampResp
from timestamp.clock import AlertSeverity, ClockMonitor
from timestamp.request import build_request
from timestamp.tsa import TSAService
from timestamp.verify import verify_token

DATA = b"clock discipline\n"
ACCURACY = 1.0  # seconds, as the TSA declares in its tokens


class Alerts(list[tuple[str, AlertSeverity]]):
    def __call__(self, message: str, severity: AlertSeverity) -> None:
        self.append((message, severity))

    @property
    def severities(self) -> list[AlertSeverity]:
        return [severity for _, severity in self]


def _monitor(server: ChronyServer, alerts: Alerts, max_silence: float = 30.0) -> ClockMonitor:
    return ClockMonitor([server.address], accuracy=ACCURACY, max_silence=max_silence, timeout=0.5, alert=alerts)


def _fail_info(tsa: TSAService) -> set[str] | None:
    status = TimeStampResp.load(tsa.respond(build_request(DATA)).der)["status"]
    return status["fail_info"].native if status["status"].native == "rejection" else None


def test_clock_in_sync_with_chronyd_is_healthy_and_tokens_are_granted(
    chrony_server: Callable[..., ChronyServer], tsa_pki: TSAPKI
) -> None:
    alerts = Alerts()
    monitor = _monitor(chrony_server(), alerts)
    tsa = tsa_pki.service(clock_check=monitor.is_healthy)
    assert _fail_info(tsa) == {"time_not_available"}  # not checked yet

    status = monitor.poll()

    assert status.healthy, status.reason
    assert status.offset is not None and abs(status.offset) < 0.1
    assert status.samples[0].stratum == 1
    assert _fail_info(tsa) is None
    response = tsa.respond(build_request(DATA))
    verify_token(response.der, data=DATA, roots=[tsa_pki.root])
    assert alerts == []


def test_shifted_server_suspends_the_tsa_with_one_alert_and_a_good_server_resumes_it(
    chrony_server: Callable[..., ChronyServer], tsa_pki: TSAPKI
) -> None:
    good = chrony_server()
    shifted = chrony_server(offset=7)
    alerts = Alerts()
    monitor = _monitor(good, alerts)
    tsa = tsa_pki.service(clock_check=monitor.is_healthy)
    assert monitor.poll().healthy

    monitor.set_servers([shifted.address])
    status = monitor.poll()
    monitor.poll()

    assert not status.healthy
    assert status.offset == pytest.approx(7.0, abs=0.5)
    assert "exceeds the declared accuracy" in status.reason
    assert _fail_info(tsa) == {"time_not_available"}
    assert alerts.severities == [AlertSeverity.CRITICAL]

    monitor.set_servers([good.address])
    status = monitor.poll()

    assert status.healthy, status.reason
    assert alerts.severities == [AlertSeverity.CRITICAL, AlertSeverity.INFO]
    response = tsa.respond(build_request(DATA))
    assert response.granted
    verify_token(response.der, data=DATA, roots=[tsa_pki.root])


def test_fresh_monitor_facing_only_a_shifted_server_never_grants(
    chrony_server: Callable[..., ChronyServer], tsa_pki: TSAPKI
) -> None:
    alerts = Alerts()
    monitor = _monitor(chrony_server(offset=-5), alerts)
    tsa = tsa_pki.service(clock_check=monitor.is_healthy)

    assert not monitor.poll().healthy
    assert monitor.status.offset == pytest.approx(-5.0, abs=0.5)
    assert _fail_info(tsa) == {"time_not_available"}
    assert alerts.severities == [AlertSeverity.CRITICAL]


def test_no_answer_makes_the_clock_unhealthy_after_the_interval(
    chrony_server: Callable[..., ChronyServer], tsa_pki: TSAPKI
) -> None:
    server = chrony_server()
    alerts = Alerts()
    monitor = _monitor(server, alerts, max_silence=1.0)
    tsa = tsa_pki.service(clock_check=monitor.is_healthy)
    assert monitor.poll().healthy

    server.stop()
    assert monitor.poll().healthy  # still inside the interval
    assert _fail_info(tsa) is None
    time.sleep(1.0)
    status = monitor.poll()

    assert not status.healthy
    assert "no NTP server answered" in status.reason
    assert _fail_info(tsa) == {"time_not_available"}
    assert alerts.severities == [AlertSeverity.CRITICAL]

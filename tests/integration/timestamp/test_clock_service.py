"""Clock discipline of the served TSA against real chronyd servers (one shifted with libfaketime).

The service polls NTP in the background every second here.  With its only
reference 7 s off (accuracy 1 s) it answers ``timeNotAvailable`` (HTTP 503),
raises exactly one alert and reports not ready; pointed at a good server it
grants tokens again and says so; when that server goes silent for longer than
``max_silence_seconds`` it suspends again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.chrony import ChronyServer
from tests.integration.timestamp.tsa_platform import LiveTSA, running_tsa, wait_until
from timestamp.asn1 import TimeStampResp
from timestamp.request import build_request

DATA = b"clock discipline of the served TSA\n"


def _alerts(live: LiveTSA, name: str) -> int:
    return sum(1 for alert in live.platform.alerts.history if alert.name == name)


def _status(live: LiveTSA) -> tuple[int, str, set[str] | None]:
    reply = live.post_query(build_request(DATA))
    assert reply.headers["content-type"] == "application/timestamp-reply"
    status = TimeStampResp.load(reply.content)["status"]
    fail_info = status["fail_info"].native if status["status"].native == "rejection" else None
    return reply.status_code, status["status"].native, fail_info


def test_shifted_reference_suspends_tokens_until_a_good_one_answers_and_silence_suspends_again(
    tmp_path: Path, chrony_server: Callable[..., ChronyServer]
) -> None:
    good = chrony_server()
    shifted = chrony_server(offset=7)
    tsa = {
        "ntp_servers": [shifted.address],
        "ntp_poll_interval_seconds": 1,
        "ntp_timeout_seconds": 0.5,
        "accuracy_seconds": 1,
        "max_silence_seconds": 2,
    }
    with running_tsa(tmp_path, tsa=tsa) as live:
        monitor = live.service.clock_monitor
        assert monitor is not None
        wait_until(lambda: _alerts(live, "tsa.clock_unhealthy") == 1)
        before = live.counts()

        assert _status(live) == (503, "rejection", {"time_not_available"})
        with live.client() as client:
            ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["tsa"] == "timestamp.clock_unavailable"
        time.sleep(2.5)  # two more polls against the shifted server: still one alert
        assert _alerts(live, "tsa.clock_unhealthy") == 1
        assert live.counts() == before  # nothing was issued, nothing recorded

        monitor.set_servers([good.address])
        wait_until(live.service.clock_healthy)

        assert _status(live) == (200, "granted", None)
        assert _alerts(live, "tsa.clock_recovered") == 1
        assert live.counts() == (before[0] + 1, before[1] + 1)
        with live.client() as client:
            assert client.get("/readyz").json()["checks"]["tsa"] == "ok"

        good.stop()
        wait_until(lambda: not live.service.clock_healthy(), timeout=10)

        assert _status(live) == (503, "rejection", {"time_not_available"})
        wait_until(lambda: _alerts(live, "tsa.clock_unhealthy") == 2, timeout=10)
        assert "no NTP" in monitor.status.reason or "NTP server" in monitor.status.reason

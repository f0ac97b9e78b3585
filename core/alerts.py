"""The one alert channel: a log line always, plus an optional webhook and syslog.

Other parts raise alerts through :class:`AlertChannel`; they never talk to a
webhook or syslog themselves.  Delivery to the webhook happens on a background
thread so an alert never blocks a request; a failed delivery is logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import logging.handlers
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx

from core.clock import Clock, isoformat_utc, utc_now

log = logging.getLogger("hengxin.alerts")

Severity = Literal["info", "warning", "critical"]
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


@dataclasses.dataclass(frozen=True)
class Alert:
    name: str  # stable dotted name, e.g. "tsa.clock_unhealthy"
    severity: Severity
    message: str
    raised_at: dt.datetime
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "raised_at": isoformat_utc(self.raised_at),
            "details": self.details,
        }


class AlertChannel:
    def __init__(
        self,
        *,
        instance: str = "hengxin",
        webhook_url: str = "",
        webhook_timeout: float = 5.0,
        syslog_address: str = "",
        clock: Clock = utc_now,
        enabled: bool = True,
    ) -> None:
        self.instance = instance
        self.webhook_url = webhook_url
        self.webhook_timeout = webhook_timeout
        self.clock = clock
        self.enabled = enabled
        self.history: list[Alert] = []  # the most recent alerts, for /api and tests
        self._history_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts") if webhook_url else None
        self._syslog: logging.Logger | None = None
        if syslog_address:
            address: Any = syslog_address
            if ":" in syslog_address and not syslog_address.startswith("/"):
                host, port = syslog_address.rsplit(":", 1)
                address = (host, int(port))
            handler = logging.handlers.SysLogHandler(address=address)
            handler.setFormatter(logging.Formatter("hengxin: %(message)s"))
            self._syslog = logging.Logger("hengxin.alerts.syslog")
            self._syslog.addHandler(handler)

    def raise_alert(self, name: str, severity: Severity, message: str, **details: Any) -> Alert:
        """Record and deliver an alert; never raises."""
        alert = Alert(name, severity, message, self.clock(), details)
        with self._history_lock:
            self.history.append(alert)
            del self.history[:-1000]
        log.log(_LEVELS[severity], message, extra={"alert": alert.to_json()})
        if not self.enabled:
            return alert
        if self._syslog is not None:
            try:
                self._syslog.log(_LEVELS[severity], json.dumps(alert.to_json(), ensure_ascii=False))
            except OSError:
                log.warning("syslog delivery failed", extra={"alert_name": name})
        if self._executor is not None:
            self._executor.submit(self._deliver, alert)
        return alert

    def _deliver(self, alert: Alert) -> None:
        body = {"instance": self.instance, **alert.to_json()}
        try:
            response = httpx.post(self.webhook_url, json=body, timeout=self.webhook_timeout)
            response.raise_for_status()
        except httpx.HTTPError as e:
            log.warning("alert webhook delivery failed", extra={"alert_name": alert.name, "error": type(e).__name__})

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

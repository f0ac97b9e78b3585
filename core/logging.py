"""Logging: JSON lines on stdout, one object per record.

Rotation is left to the service manager (journald) or logrotate; see
docs/operations.md.  Never log secrets: the formatter does not scrub, callers
must not pass them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


# One encoder for every record: json.dumps with options builds a new encoder per call, which was a fifth of the
# cost of an access log line.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _record_time(created: float) -> str:
    """The record's creation time in the format of :func:`core.clock.isoformat_utc`, without a datetime."""
    seconds = int(created)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{int((created - seconds) * 1e6):06d}Z"


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _record_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


def configure_logging(level: str = "INFO", fmt: str = "json", *, stream: Any = None) -> None:
    """Send every ``hengxin.*`` and uvicorn record to ``stream`` (stdout by default) in the chosen format.

    The service logs to stdout; CLI commands log to stderr so their output stays clean.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # The access log is written by our own middleware, with the request id.
    logging.getLogger("uvicorn.access").disabled = True

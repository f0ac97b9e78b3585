"""Errors of the timestamp service layer (records, recording, availability).

The RFC 3161 core never raises for a client's request (see :mod:`timestamp.tsa`);
these come from the service around it: looking records up, a TSA that has no
certificate yet, and a failed commit of the records and audit entries.
"""

from __future__ import annotations

from core.errors import Category
from timestamp.errors import TimestampError


class TimestampNotFound(TimestampError):
    """No token with this serial number was issued here."""

    code = "timestamp.not_found"
    category = Category.NOT_FOUND
    title_en = "No such timestamp"
    title_zh = "时间戳不存在"


class TSAUnavailable(TimestampError):
    """The TSA has no usable key and certificate (not initialised, expired or revoked)."""

    code = "timestamp.unavailable"
    category = Category.UNAVAILABLE
    title_en = "The timestamp authority is not available"
    title_zh = "时间戳服务不可用"


class RecordingFailed(TimestampError):
    """The token's record and audit entry could not be committed; the token was not returned."""

    code = "timestamp.recording_failed"
    category = Category.UNAVAILABLE
    title_en = "The timestamp could not be recorded"
    title_zh = "时间戳无法记录"

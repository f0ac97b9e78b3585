"""RFC 3161 / RFC 5816 timestamp authority: issuing, requesting and verifying tokens.

The clock discipline lives in :mod:`timestamp.clock` (it needs ``ntplib``) and
is imported from there.
"""

from timestamp.errors import TimestampError
from timestamp.policy import Accuracy, TSAPolicy
from timestamp.request import build_request
from timestamp.tsa import Failure, TimestampRecord, TSAResponse, TSAService
from timestamp.verify import VerifiedTimestamp, verify_token

__all__ = [
    "Accuracy",
    "Failure",
    "TSAPolicy",
    "TSAResponse",
    "TSAService",
    "TimestampError",
    "TimestampRecord",
    "VerifiedTimestamp",
    "build_request",
    "verify_token",
]

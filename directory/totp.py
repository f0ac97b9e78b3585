"""Time-based one-time passwords (RFC 6238, HOTP of RFC 4226 underneath).

Pure functions of a secret and a time: the service (:mod:`directory.auth`)
stores the secret (encrypted) and the last step used, so a code is accepted
once.  Authenticator apps read the ``otpauth://`` URI from a QR code.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import struct
import urllib.parse

DIGITS = 6
PERIOD_SECONDS = 30
SECRET_BYTES = 20  # 160 bits, the HMAC-SHA1 block recommended by RFC 4226


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def hotp(secret: bytes, counter: int, digits: int = DIGITS) -> str:
    """The RFC 4226 value for ``counter`` (HMAC-SHA1, dynamic truncation)."""
    digest = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def time_step(moment: dt.datetime, period: int = PERIOD_SECONDS) -> int:
    return int(moment.timestamp()) // period


def totp(secret: bytes, moment: dt.datetime, digits: int = DIGITS, period: int = PERIOD_SECONDS) -> str:
    """The code shown by an authenticator at ``moment``."""
    return hotp(secret, time_step(moment, period), digits)


def matching_step(
    secret: bytes, code: str, moment: dt.datetime, *, window: int = 1, after_step: int | None = None
) -> int | None:
    """The time step (within ``window`` steps of ``moment``) whose code is ``code``, or None.

    Steps at or before ``after_step`` (the last one accepted) never match, so a
    code cannot be replayed.  Compares in constant time.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = time_step(moment)
    found = None
    for step in range(current - window, current + window + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(hotp(secret, step), code) and found is None:
            found = step
    return found


def otpauth_uri(secret: bytes, *, issuer: str, account: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read (Google Authenticator key URI format)."""
    encoded = base64.b32encode(secret).decode("ascii").rstrip("=")
    label = urllib.parse.quote(f"{issuer}:{account}", safe="")
    query = urllib.parse.urlencode(
        {"secret": encoded, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": PERIOD_SECONDS}
    )
    return f"otpauth://totp/{label}?{query}"

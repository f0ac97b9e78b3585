"""TOTP (RFC 6238) against the RFC's own test vectors, replay refusal and the otpauth URI."""

import base64
import datetime as dt
import urllib.parse

from directory import totp

RFC_SECRET = b"12345678901234567890"  # RFC 6238 appendix B, HMAC-SHA1


def at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def test_rfc_6238_sha1_vectors() -> None:
    vectors = {59: "94287082", 1111111109: "07081804", 1111111111: "14050471", 1234567890: "89005924",
               2000000000: "69279037", 20000000000: "65353130"}
    for seconds, code in vectors.items():
        assert totp.totp(RFC_SECRET, at(seconds), digits=8) == code


def test_rfc_4226_hotp_vectors() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
    assert [totp.hotp(RFC_SECRET, counter) for counter in range(10)] == expected


def test_code_matches_within_one_step_and_not_after_it_was_used() -> None:
    moment = at(1_700_000_000)
    code = totp.totp(RFC_SECRET, moment)
    step = totp.matching_step(RFC_SECRET, code, moment + dt.timedelta(seconds=30))
    assert step == totp.time_step(moment)
    assert totp.matching_step(RFC_SECRET, code, moment, after_step=step) is None  # replay
    assert totp.matching_step(RFC_SECRET, code, moment + dt.timedelta(seconds=90)) is None  # too late


def test_malformed_codes_never_match() -> None:
    moment = at(1_700_000_000)
    for code in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert totp.matching_step(RFC_SECRET, code, moment) is None


def test_otpauth_uri_carries_the_secret_issuer_and_account() -> None:
    secret = totp.new_secret()
    uri = totp.otpauth_uri(secret, issuer="恒信", account="zhangwei")
    parsed = urllib.parse.urlparse(uri)
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    assert urllib.parse.unquote(parsed.path) == "/恒信:zhangwei"
    query = urllib.parse.parse_qs(parsed.query)
    encoded = query["secret"][0]
    assert base64.b32decode(encoded + "=" * (-len(encoded) % 8)) == secret
    assert query["issuer"] == ["恒信"] and query["digits"] == ["6"] and query["period"] == ["30"]

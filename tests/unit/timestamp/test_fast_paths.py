"""The per-token fast paths: the DER writer and reader, and the direct reading of common requests.

Each is checked against asn1crypto, which the general path uses: the writer byte for byte, the request
reader by reading the same requests both ways and comparing what the TSA makes of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from asn1crypto import core

from tests.unit.timestamp.test_tsa import DATA, raw_request
from tests.unit.timestamp.tsa_pki import TSAPKI, default_policy
from timestamp import der
from timestamp.request import build_request
from timestamp.tsa import TSAService, _ParsedRequest, _Rejected

POLICY = "1.3.6.1.4.1.32473.2.7"


@pytest.mark.parametrize(
    "value", [0, 1, 127, 128, 255, 256, 2**63, 2**64 - 1, 2**127 | 1, 2**159, -1, -128, -129, -(2**70)]
)
def test_integer_is_the_minimal_twos_complement_asn1crypto_writes(value: int) -> None:
    assert der.integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize("microsecond", [0, 1, 10, 120000, 123456, 999999])
def test_generalized_time_writes_the_fraction_as_asn1crypto_does(microsecond: int) -> None:
    moment = datetime(2031, 2, 3, 4, 5, 6, microsecond, tzinfo=UTC)

    assert der.generalized_time(moment) == core.GeneralizedTime(moment).dump()


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 256, 65535, 65536])
def test_tlv_lengths_are_definite_and_minimal(size: int) -> None:
    assert der.tlv(0x04, b"x" * size) == core.OctetString(b"x" * size).dump()


@pytest.mark.parametrize(
    "encoding",
    [
        b"\x04\x81\x05hello",  # long form for a short length
        b"\x04\x82\x00\x05hello",  # leading zero in the length
        b"\x04\x80hello\x00\x00",  # indefinite length
        b"\x04\x06hello",  # past the end
        b"\x05\x05hello",  # another tag
    ],
)
def test_reader_refuses_what_is_not_der(encoding: bytes) -> None:
    with pytest.raises(ValueError):
        der.Reader(encoding).content(0x04)


def _general(tsa: TSAService, request: bytes) -> tuple[_ParsedRequest, str | None]:
    """What asn1crypto's path makes of ``request``: the parsed fields and the rejection, if any."""
    parsed = _ParsedRequest()
    original = tsa._parse_common
    tsa._parse_common = lambda *_: False  # type: ignore[method-assign]
    try:
        tsa._parse(request, parsed)
        failure = None
    except _Rejected as rejected:
        failure = rejected.failure.rfc_name
    finally:
        tsa._parse_common = original  # type: ignore[method-assign]
    return parsed, failure


@pytest.fixture
def tsa(tsa_pki: TSAPKI) -> TSAService:
    return tsa_pki.service(default_policy(accepted_policies=frozenset({POLICY})))


def _with_last_byte(request: bytes, last: int) -> bytes:
    return request[:-1] + bytes((last,))


ACCEPTABLE = {
    "default": build_request(DATA),
    "no-nonce": build_request(DATA, nonce=False),
    "no-cert-req": build_request(DATA, cert_req=False),
    "sha512": build_request(DATA, hash_algorithm="sha512"),
    "absent-parameters": raw_request(parameters=None),
    "null-parameters": raw_request(parameters=core.Null()),
    "policy": raw_request(policy=POLICY),
    "big-nonce": raw_request(nonce=2**150 + 7),
    "zero-nonce": raw_request(nonce=0),
    "negative-nonce": raw_request(nonce=-5),
    "cert-req-false-written": _with_last_byte(raw_request(cert_req=True), 0x00),  # DEFAULT written: BER
}


@pytest.mark.parametrize("request_der", ACCEPTABLE.values(), ids=ACCEPTABLE.keys())
def test_common_requests_are_read_directly_with_the_same_result(tsa: TSAService, request_der: bytes) -> None:
    fast = _ParsedRequest()

    assert tsa._parse_common(request_der, fast)
    assert _general(tsa, request_der) == (fast, None)


NOT_COMMON = {
    "version-2": raw_request(version=2),
    "unknown-policy": raw_request(policy="1.2.3.4"),
    "refused-hash": raw_request(algorithm="sha1"),
    "short-digest": raw_request(digest=b"\x01" * 31),
    "extension": raw_request(extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]),
    "cert-req-true-not-ff": _with_last_byte(raw_request(cert_req=True), 0x01),
    "long-form-length": b"\x30\x81" + bytes((len(build_request(DATA)) - 2,)) + build_request(DATA)[2:],
    "trailing-byte": build_request(DATA) + b"\x00",
    "truncated": build_request(DATA)[:-3],
    "garbage": b"garbage",
    "empty": b"",
}


@pytest.mark.parametrize("request_der", NOT_COMMON.values(), ids=NOT_COMMON.keys())
def test_everything_else_is_left_to_asn1crypto(tsa: TSAService, request_der: bytes) -> None:
    parsed = _ParsedRequest()

    assert not tsa._parse_common(request_der, parsed)
    assert parsed == _ParsedRequest()  # untouched


def test_a_token_read_directly_verifies_like_any_other(tsa_pki: TSAPKI) -> None:
    tsa = tsa_pki.service(clock=lambda: datetime.now(timezone(timedelta(hours=8))))

    response = tsa.respond(raw_request(nonce=2**100))

    assert response.granted and response.record.nonce == 2**100

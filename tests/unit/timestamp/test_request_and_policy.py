"""build_request, the policy and accuracy configuration, and the hash table."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto import tsp

from timestamp.algorithms import hash_algorithm
from timestamp.errors import TimestampRequestInvalid, TSAConfigurationError, UnsupportedAlgorithm
from timestamp.policy import Accuracy, TSAPolicy
from timestamp.request import build_request

POLICY = "1.3.6.1.4.1.99999.1.1"


def test_request_carries_imprint_nonce_cert_req_and_policy() -> None:
    request = tsp.TimeStampReq.load(build_request(b"abc", hash_algorithm="sha-384", nonce=17, policy=POLICY))

    assert request["version"].native == "v1"
    assert request["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha384"
    assert request["message_imprint"]["hashed_message"].native == hashlib.sha384(b"abc").digest()
    assert request["nonce"].native == 17
    assert request["cert_req"].native is True
    assert request["req_policy"].dotted == POLICY


def test_request_from_digest_without_nonce_or_cert_req() -> None:
    digest = hashlib.sha512(b"abc").digest()
    request = tsp.TimeStampReq.load(build_request(digest=digest, hash_algorithm="sha512", nonce=False, cert_req=False))
    assert request["message_imprint"]["hashed_message"].native == digest
    assert request["nonce"].native is None
    assert request["cert_req"].native is False
    assert request["req_policy"].native is None


def test_random_nonces_differ_and_are_64_bit() -> None:
    nonces = {tsp.TimeStampReq.load(build_request(b"x"))["nonce"].native for _ in range(50)}
    assert len(nonces) == 50
    assert all(2**63 <= n < 2**64 for n in nonces)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"data": b"x", "digest": hashlib.sha256(b"x").digest()},
        {"digest": b"short"},
        {"data": b"x", "nonce": -1},
        {"data": b"x", "policy": "not an oid"},
    ],
    ids=["nothing", "both", "short-digest", "negative-nonce", "bad-policy"],
)
def test_bad_request_arguments_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(TimestampRequestInvalid) as raised:
        build_request(**kwargs)  # type: ignore[arg-type]
    assert raised.value.code == "timestamp.request_invalid"


@pytest.mark.parametrize("name", ["sha1", "SHA-1", "md5", "1.3.14.3.2.26"])
def test_broken_hashes_are_refused_by_name_and_oid(name: str) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="refused"):
        build_request(b"x", hash_algorithm=name)


def test_unknown_hash_is_unsupported() -> None:
    with pytest.raises(UnsupportedAlgorithm, match="unknown"):
        hash_algorithm("whirlpool")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sha256", "sha256"),
        ("SHA-256", "sha256"),
        ("2.16.840.1.101.3.4.2.2", "sha384"),
        ("sha3-256", "sha3_256"),
        ("sha3_512", "sha3_512"),
    ],
)
def test_hash_names_and_oids_are_recognised(name: str, expected: str) -> None:
    assert hash_algorithm(name).name == expected


def test_policy_always_accepts_its_default_and_normalises_hash_names() -> None:
    policy = TSAPolicy(default_policy=POLICY, hash_algorithms=frozenset({"SHA-256", "sha3-256"}))
    assert policy.accepted_policies == frozenset({POLICY})
    assert policy.hash_algorithms == frozenset({"sha256", "sha3_256"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_policy": "policy-1"},
        {"default_policy": POLICY, "accepted_policies": frozenset({"1.2.x"})},
        {"default_policy": POLICY, "hash_algorithms": frozenset({"sha256", "sha1"})},
        {"default_policy": POLICY, "hash_algorithms": frozenset({"md5"})},
        {"default_policy": POLICY, "hash_algorithms": frozenset()},
        {"default_policy": POLICY, "time_precision_digits": 7},
    ],
    ids=["bad-default", "bad-accepted", "sha1", "md5", "no-hash", "precision"],
)
def test_bad_policies_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(TSAConfigurationError) as raised:
        TSAPolicy(**kwargs)  # type: ignore[arg-type]
    assert raised.value.code == "timestamp.configuration"


@pytest.mark.parametrize("fields", [(0, 0, 0), (-1, 0, 0), (0, 1000, 0), (0, 0, -1)])
def test_bad_accuracy_is_a_configuration_error(fields: tuple[int, int, int]) -> None:
    with pytest.raises(TSAConfigurationError):
        Accuracy(*fields)


def test_accuracy_converts_to_seconds_and_duration() -> None:
    accuracy = Accuracy(seconds=1, millis=250, micros=5)
    assert accuracy.as_seconds() == pytest.approx(1.250005)
    assert accuracy.as_timedelta().total_seconds() == pytest.approx(1.250005)
    assert accuracy.precision_digits == 6
    assert TSAPolicy(default_policy=POLICY, accuracy=accuracy, time_precision_digits=2).precision_digits == 2

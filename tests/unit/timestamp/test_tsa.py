"""TSAService: granted tokens, their fields, rejections and self-check failures.

Responses are parsed back with asn1crypto and the signature is checked with
cryptography; openssl and rfc3161-client check them in tests/interop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from asn1crypto import cms, core, parser, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from core.errors import KeyStoreUnavailable
from tests.unit.timestamp.reference import TokenSpec, reference_response
from tests.unit.timestamp.tsa_pki import (
    OTHER_POLICY,
    POLICY,
    TSAPKI,
    UNKNOWN_POLICY,
    build_tsa_pki,
    default_policy,
    generate_key,
    issue_tsa_certificate,
)
from timestamp.asn1 import TimeStampResp
from timestamp.errors import TSAConfigurationError
from timestamp.policy import Accuracy
from timestamp.request import build_request
from timestamp.tsa import Failure, TSAService

DATA = b"Hengxin timestamp test data\n"
# Inside the test certificates' validity, with a fraction that shows truncation.
FIXED_TIME = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=123456)


def parse(der: bytes) -> TimeStampResp:
    response = TimeStampResp.load(der, strict=True)
    response.native  # noqa: B018 (parse everything: a broken encoding fails here)
    return response


def tst_info_of(der: bytes) -> tsp.TSTInfo:
    return parse(der)["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed


def signer_info_of(der: bytes) -> cms.SignerInfo:
    return parse(der)["time_stamp_token"]["content"]["signer_infos"][0]


class _AlgorithmIdentifier(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


def raw_request(
    *,
    algorithm: str = "sha256",
    digest: bytes | None = None,
    parameters: Any = None,
    version: int = 1,
    policy: str | None = None,
    nonce: int | None = 42,
    cert_req: bool = True,
    extensions: list[dict[str, Any]] | None = None,
) -> bytes:
    """A TimeStampReq built directly with asn1crypto, so tests can send what build_request refuses."""
    if digest is None:
        digest = hashlib.new(algorithm if not algorithm[0].isdigit() else "sha256", DATA).digest()
    if parameters is None or isinstance(parameters, core.Null):
        message_imprint: Any = {
            "hash_algorithm": {"algorithm": algorithm, "parameters": parameters},
            "hashed_message": digest,
        }
    else:  # asn1crypto forces NULL parameters on SHA-2 identifiers; build the identifier generically.
        identifier = _AlgorithmIdentifier({"algorithm": algorithm, "parameters": parameters})
        message_imprint = tsp.MessageImprint.load(
            tsp.MessageImprint(contents=identifier.dump() + core.OctetString(digest).dump()).dump()
        )
    return tsp.TimeStampReq(
        {
            "version": version,
            "message_imprint": message_imprint,
            "req_policy": policy,
            "nonce": nonce,
            "cert_req": cert_req,
            "extensions": extensions,
        }
    ).dump()


class StoreSigner(ec.EllipticCurvePrivateKey):
    """A key-store adapter: only sign() and public_key() may be called."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, sign: Callable[[bytes], bytes]) -> None:
        self._public_key = public_key
        self._sign = sign
        self.calls = 0

    def sign(
        self, data: bytes | bytearray | memoryview, signature_algorithm: ec.EllipticCurveSignatureAlgorithm
    ) -> bytes:
        assert isinstance(signature_algorithm, ec.ECDSA)
        self.calls += 1
        return self._sign(bytes(data))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError("the TSA must only call sign() and public_key() on its signer")

    curve = property(_refuse)  # type: ignore[assignment]
    key_size = property(_refuse)  # type: ignore[assignment]
    exchange = _refuse
    private_numbers = _refuse
    private_bytes = _refuse
    __copy__ = _refuse
    __deepcopy__ = _refuse


# ---------------------------------------------------------------------------
# Granted tokens.


def test_granted_token_echoes_imprint_and_nonce_under_the_default_policy(tsa: TSAService) -> None:
    request = build_request(DATA, nonce=1234567890123456789)

    response = tsa.respond(request, requester="alice")

    assert response.granted
    parsed = parse(response.der)
    assert parsed["status"]["status"].native == "granted"
    tst = tst_info_of(response.der)
    assert tst["version"].native == "v1"
    assert tst["policy"].dotted == POLICY
    assert tst["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert tst["message_imprint"]["hashed_message"].native == hashlib.sha256(DATA).digest()
    assert tst["nonce"].native == 1234567890123456789
    assert tst["ordering"].native is False
    assert tst["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert response.token == parsed["time_stamp_token"].dump()
    record = response.record
    assert record.status == "granted"
    assert record.serial_number == tst["serial_number"].native
    assert record.gen_time == tst["gen_time"].native
    assert record.message_imprint == hashlib.sha256(DATA).hexdigest()
    assert (record.hash_algorithm, record.policy, record.nonce, record.requester) == (
        "sha256",
        POLICY,
        1234567890123456789,
        "alice",
    )
    assert record.failure is None


def test_ordering_is_left_out_as_its_default_false(tsa: TSAService) -> None:
    tst = tst_info_of(tsa.respond(build_request(DATA)).der)
    remaining, tags = tst.contents, []
    while remaining:
        class_, _method, tag, header, body, trailer = parser.parse(remaining)
        tags.append((class_, tag))
        remaining = remaining[len(header) + len(body) + len(trailer) :]
    assert (0, 1) not in tags  # no universal BOOLEAN among the TSTInfo fields
    assert tst["ordering"].native is False


def test_request_without_nonce_gets_a_token_without_nonce(tsa: TSAService) -> None:
    tst = tst_info_of(tsa.respond(build_request(DATA, nonce=False)).der)
    assert tst["nonce"].native is None


def test_accepted_request_policy_is_used(tsa: TSAService) -> None:
    response = tsa.respond(build_request(DATA, policy=OTHER_POLICY))
    assert tst_info_of(response.der)["policy"].dotted == OTHER_POLICY
    assert response.record.policy == OTHER_POLICY


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_default_hash_algorithms_are_accepted(tsa: TSAService, algorithm: str) -> None:
    tst = tst_info_of(tsa.respond(build_request(DATA, hash_algorithm=algorithm)).der)
    assert tst["message_imprint"]["hash_algorithm"]["algorithm"].native == algorithm
    assert tst["message_imprint"]["hashed_message"].native == hashlib.new(algorithm, DATA).digest()


@pytest.mark.parametrize("null", [False, True])
def test_imprint_algorithm_parameters_are_echoed_as_sent(tsa: TSAService, null: bool) -> None:
    request = raw_request(parameters=core.Null() if null else None)
    sent = tsp.TimeStampReq.load(request)["message_imprint"].dump()

    tst = tst_info_of(tsa.respond(request).der)

    assert tst["message_imprint"].dump() == sent


def test_certificates_are_sent_only_on_cert_req_and_der_sorted(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    without = parse(tsa.respond(build_request(DATA, cert_req=False)).der)
    assert not without["time_stamp_token"]["content"]["certificates"]

    signed_data = parse(tsa.respond(build_request(DATA, cert_req=True)).der)["time_stamp_token"]["content"]
    encodings = [c.chosen.dump() for c in signed_data["certificates"]]
    expected = {c.public_bytes(Encoding.DER) for c in (tsa_pki.tsa_certificate, tsa_pki.intermediate)}
    assert set(encodings) == expected
    assert encodings == sorted(encodings)


def test_signed_data_structure_follows_rfc_3161_and_5652(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    token = parse(tsa.respond(build_request(DATA)).der)["time_stamp_token"]
    assert token["content_type"].native == "signed_data"
    signed_data = token["content"]
    assert signed_data["version"].native == "v3"
    assert signed_data["encap_content_info"]["content_type"].native == "tst_info"
    assert [a["algorithm"].native for a in signed_data["digest_algorithms"]] == ["sha256"]
    signer_info = signed_data["signer_infos"][0]
    assert len(signed_data["signer_infos"]) == 1
    assert signer_info["version"].native == "v1"
    sid = signer_info["sid"].chosen
    assert sid["serial_number"].native == tsa_pki.tsa_certificate.serial_number
    assert sid["issuer"] == asn1_x509.Certificate.load(tsa_pki.tsa_certificate.public_bytes(Encoding.DER)).issuer
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    # RFC 5754: SHA-2 AlgorithmIdentifiers have absent parameters.
    assert isinstance(signer_info["digest_algorithm"]["parameters"], core.Void)


def test_signed_attributes_carry_content_type_digest_and_ess_cert_id_v2(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    der = tsa.respond(build_request(DATA)).der
    signed_data = parse(der)["time_stamp_token"]["content"]
    signer_info = signed_data["signer_infos"][0]
    attributes = {a["type"].native: a["values"] for a in signer_info["signed_attrs"]}

    assert set(attributes) == {"content_type", "message_digest", "signing_certificate_v2"}
    assert attributes["content_type"][0].native == "tst_info"
    tst_info_der = signed_data["encap_content_info"]["content"].contents
    assert attributes["message_digest"][0].native == hashlib.sha256(tst_info_der).digest()

    certificate_der = tsa_pki.tsa_certificate.public_bytes(Encoding.DER)
    ess = attributes["signing_certificate_v2"][0]["certs"][0]
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"
    assert ess.contents[0] == 0x04  # sha256 is the DEFAULT, so DER starts with certHash
    assert ess["cert_hash"].native == hashlib.sha256(certificate_der).digest()
    certificate = asn1_x509.Certificate.load(certificate_der)
    assert ess["issuer_serial"]["serial_number"].native == certificate.serial_number
    assert ess["issuer_serial"]["issuer"][0].chosen == certificate.issuer

    encodings = [a.dump() for a in signer_info["signed_attrs"]]
    assert encodings == sorted(encodings)
    signed = cms.CMSAttributes(contents=signer_info["signed_attrs"].contents).dump()
    public_key = tsa_pki.tsa_certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signer_info["signature"].native, signed, ec.ECDSA(hashes.SHA256()))


def test_signing_time_and_tsa_name_are_added_when_configured(tsa_pki: TSAPKI) -> None:
    tsa = tsa_pki.service(default_policy(include_signing_time=True, include_tsa_name=True), clock=lambda: FIXED_TIME)
    der = tsa.respond(build_request(DATA)).der

    attributes = {a["type"].native: a["values"] for a in signer_info_of(der)["signed_attrs"]}
    assert attributes["signing_time"][0].name == "utc_time"
    assert attributes["signing_time"][0].native == FIXED_TIME.replace(microsecond=0)
    tsa_name = tst_info_of(der)["tsa"]
    assert tsa_name.name == "directory_name"
    assert tsa_name.chosen == asn1_x509.Certificate.load(tsa_pki.tsa_certificate.public_bytes(Encoding.DER)).subject


@pytest.mark.parametrize(
    ("accuracy", "encoded", "precision"),
    [
        (Accuracy(seconds=1), {"seconds": 1, "millis": None, "micros": None}, 0),
        (Accuracy(seconds=0, millis=500), {"seconds": None, "millis": 500, "micros": None}, 3),
        (Accuracy(seconds=2, millis=0, micros=250), {"seconds": 2, "millis": None, "micros": 250}, 6),
    ],
)
def test_accuracy_is_encoded_and_gen_time_has_matching_precision(
    tsa_pki: TSAPKI, accuracy: Accuracy, encoded: dict[str, int | None], precision: int
) -> None:
    tsa = tsa_pki.service(default_policy(accuracy=accuracy), clock=lambda: FIXED_TIME)
    tst = tst_info_of(tsa.respond(build_request(DATA)).der)

    assert tst["accuracy"].native == encoded
    step = 10 ** (6 - precision)
    assert tst["gen_time"].native == FIXED_TIME.replace(microsecond=FIXED_TIME.microsecond // step * step)
    raw = tst["gen_time"].contents.decode()
    assert raw.endswith("Z")
    assert ("." in raw) == (precision > 0) and not (precision and raw.endswith("0Z"))  # DER: no trailing zeros


def test_gen_time_comes_from_the_injected_clock_in_utc(tsa_pki: TSAPKI) -> None:
    beijing = FIXED_TIME.replace(microsecond=0).astimezone(timezone(timedelta(hours=8)))
    tsa = tsa_pki.service(clock=lambda: beijing)
    tst = tst_info_of(tsa.respond(build_request(DATA)).der)
    assert tst["gen_time"].native == FIXED_TIME.replace(microsecond=0)
    assert tst["gen_time"].contents == FIXED_TIME.strftime("%Y%m%d%H%M%SZ").encode()


@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
@pytest.mark.parametrize(
    "options",
    [
        {"cert_req": True, "nonce": 99},
        {"cert_req": False, "nonce": None},
        {"cert_req": True, "nonce": 2**70, "signing_time": True, "tsa_name": True},
    ],
)
def test_fast_encoder_matches_asn1crypto_reference_byte_for_byte(key_type: str, options: dict[str, Any]) -> None:
    # RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic, so whole responses compare.
    tsa_pki = build_tsa_pki(key_type)
    tsa = tsa_pki.service(
        default_policy(
            include_signing_time=options.get("signing_time", False), include_tsa_name=options.get("tsa_name", False)
        ),
        clock=lambda: FIXED_TIME,
        serial_numbers=lambda: 0x1234567890ABCDEF1234567890ABCDEF,
    )
    request = raw_request(nonce=options["nonce"], cert_req=options["cert_req"], parameters=core.Null())

    response = tsa.respond(request)

    key = tsa_pki.tsa_key
    sign: Callable[[bytes], bytes]
    if isinstance(key, rsa.RSAPrivateKey):
        rsa_key = key
        sign = lambda data: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # noqa: E731
        signature_algorithm, digest_algorithm = "sha256_rsa", "sha256"
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        sign = key.sign
        signature_algorithm, digest_algorithm = "ed25519", "sha512"
    expected = reference_response(
        TokenSpec(
            certificate=tsa_pki.tsa_certificate,
            chain=[tsa_pki.intermediate],
            sign=sign,
            signature_algorithm=signature_algorithm,
            digest_algorithm=digest_algorithm,
            policy=POLICY,
            imprint_algorithm="sha256",
            imprint=hashlib.sha256(DATA).digest(),
            serial_number=0x1234567890ABCDEF1234567890ABCDEF,
            gen_time=FIXED_TIME.replace(microsecond=0),
            nonce=options["nonce"],
            cert_req=options["cert_req"],
            signing_time=options.get("signing_time", False),
            tsa_name=options.get("tsa_name", False),
        )
    )
    assert response.der == expected


def test_key_store_signer_is_only_asked_to_sign(tsa_pki: TSAPKI) -> None:
    key = tsa_pki.tsa_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signer = StoreSigner(key.public_key(), lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())))
    tsa = TSAService(signer, tsa_pki.tsa_certificate, default_policy(), chain=[tsa_pki.intermediate])

    response = tsa.respond(build_request(DATA))

    assert response.granted
    assert signer.calls == 1


def test_serial_numbers_are_unique_over_10000_tokens(tsa: TSAService, capsys: pytest.CaptureFixture[str]) -> None:
    request = build_request(DATA)
    count = 10_000
    started = time.perf_counter()
    serials = {tsa.respond(request).record.serial_number for _ in range(count)}
    elapsed = time.perf_counter() - started

    assert len(serials) == count
    assert all(s is not None and 0 < s < 2**160 for s in serials)
    with capsys.disabled():
        print(
            f"\n[throughput] ECDSA P-256, one core, in process: {count / elapsed:.0f} tokens/s "
            f"({elapsed / count * 1e6:.0f} us per token, certReq, self-check included)"
        )


# ---------------------------------------------------------------------------
# Rejections.


def _failure(der: bytes) -> tuple[str, set[str], list[str]]:
    status = parse(der)["status"]
    return status["status"].native, status["fail_info"].native, status["status_string"].native


@pytest.mark.parametrize(
    ("request_der", "failure"),
    [
        (b"", "bad_data_format"),
        (b"garbage, not DER at all", "bad_data_format"),
        (build_request(DATA)[:-7], "bad_data_format"),
        (build_request(DATA) + b"\x00\x00", "bad_data_format"),
        (core.Sequence(contents=b"\x02\x01\x01").dump(), "bad_data_format"),
        (raw_request(version=2), "bad_data_format"),
        (raw_request(digest=b"\x01" * 31), "bad_data_format"),
        (raw_request(algorithm="1.2.3.4.5", digest=b"\x01" * 32), "bad_alg"),
        (raw_request(algorithm="sha1"), "bad_alg"),
        (raw_request(algorithm="md5"), "bad_alg"),
        (raw_request(algorithm="sha224"), "bad_alg"),
        (raw_request(algorithm="2.16.840.1.101.3.4.2.1", parameters=core.OctetString(b"x")), "bad_alg"),
        (raw_request(policy=UNKNOWN_POLICY), "unaccepted_policy"),
        (
            raw_request(extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]),
            "unaccepted_extensions",
        ),
    ],
    ids=[
        "empty",
        "garbage",
        "truncated",
        "trailing-bytes",
        "wrong-structure",
        "version-2",
        "short-digest",
        "unknown-hash",
        "sha1",
        "md5",
        "sha224-not-configured",
        "hash-parameters",
        "unaccepted-policy",
        "extension",
    ],
)
def test_bad_requests_are_rejected_with_the_matching_failure_info(
    tsa: TSAService, request_der: bytes, failure: str
) -> None:
    response = tsa.respond(request_der)

    assert not response.granted
    status, fail_info, text = _failure(response.der)
    assert status == "rejection"
    assert fail_info == {failure}
    assert text and text[0]
    assert response.record.status == "rejection"
    assert response.record.serial_number is None
    assert (
        response.record.failure
        == {
            "bad_data_format": "badDataFormat",
            "bad_alg": "badAlg",
            "unaccepted_policy": "unacceptedPolicy",
            "unaccepted_extensions": "unacceptedExtension",
        }[failure]
    )


def test_rejection_record_keeps_what_the_request_said(tsa: TSAService) -> None:
    response = tsa.respond(raw_request(algorithm="sha1", nonce=7), requester="bob")

    record = response.record
    assert (record.status, record.failure, record.hash_algorithm, record.nonce, record.requester) == (
        "rejection",
        "badAlg",
        "sha1",
        7,
        "bob",
    )
    assert record.message_imprint == hashlib.sha1(DATA).hexdigest()
    assert "sha1" in (record.reason or "")


def test_unhealthy_clock_answers_time_not_available(tsa_pki: TSAPKI) -> None:
    healthy = False
    tsa = tsa_pki.service(clock_check=lambda: healthy)
    assert _failure(tsa.respond(build_request(DATA)).der)[:2] == ("rejection", {"time_not_available"})
    healthy = True
    assert tsa.respond(build_request(DATA)).granted


def test_clock_check_that_raises_counts_as_unhealthy(tsa_pki: TSAPKI) -> None:
    def broken() -> bool:
        raise RuntimeError("monitor crashed")

    tsa = tsa_pki.service(clock_check=broken)
    assert _failure(tsa.respond(build_request(DATA)).der)[1] == {"time_not_available"}


def test_malformed_request_is_reported_as_such_even_when_the_clock_is_unhealthy(tsa_pki: TSAPKI) -> None:
    tsa = tsa_pki.service(clock_check=lambda: False)
    assert _failure(tsa.respond(b"junk").der)[1] == {"bad_data_format"}


def test_signer_using_another_key_fails_the_self_check_with_system_failure(tsa_pki: TSAPKI) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    key = tsa_pki.tsa_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signer = StoreSigner(key.public_key(), lambda data: other.sign(data, ec.ECDSA(hashes.SHA256())))
    tsa = TSAService(signer, tsa_pki.tsa_certificate, default_policy())

    response = tsa.respond(build_request(DATA))

    assert not response.granted
    assert _failure(response.der)[1] == {"system_failure"}
    assert response.record.failure == "systemFailure"


@pytest.mark.parametrize(
    "signature",
    [lambda data: b"", lambda data: b"\x30\x06\x02\x01\x01\x02\x01\x01"],
    ids=["empty", "wrong-value"],
)
def test_signer_returning_garbage_yields_system_failure(tsa_pki: TSAPKI, signature: Callable[[bytes], bytes]) -> None:
    key = tsa_pki.tsa_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    tsa = TSAService(StoreSigner(key.public_key(), signature), tsa_pki.tsa_certificate, default_policy())
    assert _failure(tsa.respond(build_request(DATA)).der)[1] == {"system_failure"}


def test_unavailable_key_store_yields_system_failure(tsa_pki: TSAPKI) -> None:
    def unavailable(data: bytes) -> bytes:
        raise KeyStoreUnavailable("HSM session lost")

    key = tsa_pki.tsa_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    tsa = TSAService(StoreSigner(key.public_key(), unavailable), tsa_pki.tsa_certificate, default_policy())
    assert _failure(tsa.respond(build_request(DATA)).der)[1] == {"system_failure"}


@pytest.mark.parametrize("serial", [0, -5, 2**160, "12"], ids=["zero", "negative", "161-bits", "not-int"])
def test_unusable_serial_numbers_yield_system_failure(tsa_pki: TSAPKI, serial: object) -> None:
    tsa = tsa_pki.service(serial_numbers=lambda: serial)
    assert _failure(tsa.respond(build_request(DATA)).der)[1] == {"system_failure"}


def test_failing_serial_source_yields_system_failure(tsa_pki: TSAPKI) -> None:
    def exhausted() -> int:
        raise RuntimeError("sequence unavailable")

    tsa = tsa_pki.service(serial_numbers=exhausted)
    assert _failure(tsa.respond(build_request(DATA)).der)[1] == {"system_failure"}


@pytest.mark.parametrize(
    "clock",
    [
        lambda: datetime.now(UTC).replace(tzinfo=None),  # naive
        lambda: datetime.now(UTC) + timedelta(days=400),  # after the certificate expires
        lambda: datetime.now(UTC) - timedelta(days=3),  # before it is valid
    ],
    ids=["naive", "after-expiry", "before-validity"],
)
def test_clock_outside_the_certificate_or_without_zone_yields_system_failure(
    tsa_pki: TSAPKI, clock: Callable[[], datetime]
) -> None:
    tsa = tsa_pki.service(clock=clock)
    assert _failure(tsa.respond(build_request(DATA)).der)[1] == {"system_failure"}


# ---------------------------------------------------------------------------
# Configuration.


def test_key_that_does_not_match_the_certificate_is_refused(tsa_pki: TSAPKI) -> None:
    with pytest.raises(TSAConfigurationError) as raised:
        TSAService(generate_key("ec-p256"), tsa_pki.tsa_certificate, default_policy())
    assert raised.value.code == "timestamp.configuration"


@pytest.mark.parametrize(
    ("eku", "critical"),
    [
        ((ExtendedKeyUsageOID.TIME_STAMPING,), False),
        ((ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING), True),
        ((ExtendedKeyUsageOID.SERVER_AUTH,), True),
    ],
    ids=["not-critical", "extra-purpose", "other-purpose"],
)
def test_certificate_without_exactly_time_stamping_critical_is_refused(
    tsa_pki: TSAPKI, eku: tuple[x509.ObjectIdentifier, ...], critical: bool
) -> None:
    key = generate_key("ec-p256")
    certificate = issue_tsa_certificate(
        key, tsa_pki.intermediate_key, tsa_pki.intermediate, eku=eku, eku_critical=critical
    )
    with pytest.raises(TSAConfigurationError, match="timeStamping"):
        TSAService(key, certificate, default_policy())


@pytest.mark.parametrize(
    "make_key", [lambda: dsa.generate_private_key(2048), ed448.Ed448PrivateKey.generate], ids=["dsa", "ed448"]
)
def test_unsupported_key_types_are_refused(tsa_pki: TSAPKI, make_key: Callable[[], Any]) -> None:
    key = make_key()
    certificate = issue_tsa_certificate(key, tsa_pki.intermediate_key, tsa_pki.intermediate)
    with pytest.raises(TSAConfigurationError):
        TSAService(key, certificate, default_policy())


def test_ed25519_refuses_a_signature_digest_other_than_sha512() -> None:
    tsa_pki = build_tsa_pki("ed25519")
    with pytest.raises(TSAConfigurationError, match="SHA-512"):
        tsa_pki.service(default_policy(signature_digest="sha256"))


def test_signature_digest_can_be_overridden_for_ecdsa(tsa_pki: TSAPKI) -> None:
    tsa = tsa_pki.service(default_policy(signature_digest="sha512"))
    signer_info = signer_info_of(tsa.respond(build_request(DATA)).der)
    assert signer_info["digest_algorithm"]["algorithm"].native == "sha512"
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha512_ecdsa"


@pytest.mark.parametrize(
    ("key_type", "algorithm", "digest"),
    [
        ("ec-p384", "sha384_ecdsa", "sha384"),
        ("rsa", "sha256_rsa", "sha256"),
        ("ed25519", "ed25519", "sha512"),
    ],
)
def test_signature_scheme_follows_the_key(key_type: str, algorithm: str, digest: str) -> None:
    tsa = build_tsa_pki(key_type).service()
    signer_info = signer_info_of(tsa.respond(build_request(DATA)).der)
    assert signer_info["signature_algorithm"]["algorithm"].native == algorithm
    assert signer_info["digest_algorithm"]["algorithm"].native == digest


def test_front_door_can_reject_without_a_request(tsa: TSAService) -> None:
    response = tsa.reject(Failure.BAD_REQUEST, "request body too large", requester="10.0.0.8")

    assert _failure(response.der)[:2] == ("rejection", {"bad_request"})
    assert (response.record.failure, response.record.reason, response.record.requester) == (
        "badRequest",
        "request body too large",
        "10.0.0.8",
    )

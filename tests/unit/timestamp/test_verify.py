"""verify_token: our tokens verify; every broken or foreign token raises its specific error."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.unit.timestamp.reference import TokenSpec, reference_response, token_of
from tests.unit.timestamp.tsa_pki import (
    OTHER_POLICY,
    POLICY,
    TSAPKI,
    build_tsa_pki,
    default_policy,
    generate_key,
    issue_ca,
    issue_tsa_certificate,
)
from timestamp.errors import (
    ImprintMismatch,
    InvalidSignature,
    MalformedTimestamp,
    NonceMismatch,
    NotATSACertificate,
    PolicyMismatch,
    SigningCertificateMismatch,
    TimestampError,
    TimestampNotGranted,
    TimestampRequestInvalid,
    UnsupportedAlgorithm,
    UntrustedTimestamp,
)
from timestamp.request import build_request
from timestamp.tsa import TSAService
from timestamp.verify import verify_token

DATA = b"contract v3, signed 2025-01-01\n"


def issue(tsa: TSAService, **request: Any) -> bytes:
    response = tsa.respond(build_request(DATA, **request))
    assert response.granted, response.record
    return response.der


def ec_spec(tsa_pki: TSAPKI, **overrides: Any) -> TokenSpec:
    """A reference token like ours, signed with the P-256 TSA key; overrides make it wrong."""
    key = tsa_pki.tsa_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    values: dict[str, Any] = {
        "certificate": tsa_pki.tsa_certificate,
        "chain": [tsa_pki.intermediate],
        "sign": lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())),
        "signature_algorithm": "sha256_ecdsa",
        "digest_algorithm": "sha256",
        "policy": POLICY,
        "imprint_algorithm": "sha256",
        "imprint": hashlib.sha256(DATA).digest(),
        "serial_number": 77,
        "gen_time": datetime.now(UTC).replace(microsecond=0),
        "nonce": 5,
    }
    values.update(overrides)
    return TokenSpec(**values)


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa", "ed25519"])
def test_our_tokens_verify_against_data_for_every_key_type(key_type: str) -> None:
    tsa_pki = build_tsa_pki(key_type)
    response = issue(tsa_pki.service(), nonce=11, policy=OTHER_POLICY)

    verified = verify_token(response, data=DATA, roots=[tsa_pki.root], nonce=11, policy=OTHER_POLICY)

    assert verified.nonce == 11
    assert verified.policy == OTHER_POLICY
    assert verified.hash_algorithm == "sha256"
    assert verified.message_imprint == hashlib.sha256(DATA).digest()
    assert verified.accuracy == timedelta(seconds=1)
    assert verified.ordering is False
    assert verified.tsa_certificate == tsa_pki.tsa_certificate
    assert verified.certification_path == (tsa_pki.tsa_certificate, tsa_pki.intermediate, tsa_pki.root)
    assert abs(verified.gen_time - datetime.now(UTC)) < timedelta(seconds=5)


def test_bare_token_verifies_against_a_digest(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    token = token_of(issue(tsa, hash_algorithm="sha512"))
    verified = verify_token(token, digest=hashlib.sha512(DATA).digest(), roots=[tsa_pki.root])
    assert verified.hash_algorithm == "sha512"


def test_token_without_certificates_verifies_with_given_tsa_certificate(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    response = issue(tsa, cert_req=False)

    with pytest.raises(UntrustedTimestamp):
        verify_token(response, data=DATA, roots=[tsa_pki.root])
    verified = verify_token(
        response,
        data=DATA,
        roots=[tsa_pki.root],
        intermediates=[tsa_pki.intermediate],
        tsa_certificate=tsa_pki.tsa_certificate,
    )
    assert verified.tsa_certificate == tsa_pki.tsa_certificate


def test_without_data_or_digest_only_the_token_is_checked(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    assert verify_token(issue(tsa), roots=[tsa_pki.root]).serial_number > 0


def test_changed_data_is_an_imprint_mismatch(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    with pytest.raises(ImprintMismatch) as raised:
        verify_token(issue(tsa), data=DATA + b"!", roots=[tsa_pki.root])
    assert raised.value.code == "timestamp.imprint_mismatch"
    with pytest.raises(ImprintMismatch):
        verify_token(issue(tsa), digest=hashlib.sha256(b"other").digest(), roots=[tsa_pki.root])


def test_tampered_signature_is_invalid(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    response = bytearray(issue(tsa, cert_req=False))
    response[-5] ^= 0x01  # inside the ECDSA signature, the last field of the token
    with pytest.raises(InvalidSignature) as raised:
        verify_token(
            bytes(response),
            data=DATA,
            roots=[tsa_pki.root],
            tsa_certificate=tsa_pki.tsa_certificate,
            intermediates=[tsa_pki.intermediate],
        )
    assert raised.value.code == "timestamp.invalid_signature"


def test_changed_tst_info_breaks_the_message_digest(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    response = issue(tsa, nonce=0x1111)
    tampered = response.replace(b"\x02\x02\x11\x11", b"\x02\x02\x11\x12", 1)  # the nonce INTEGER
    assert tampered != response
    with pytest.raises(InvalidSignature, match="message-digest"):
        verify_token(tampered, roots=[tsa_pki.root])


def test_message_digest_over_something_else_is_invalid(tsa_pki: TSAPKI) -> None:
    response = reference_response(ec_spec(tsa_pki, message_digest=b"\x00" * 32))
    with pytest.raises(InvalidSignature):
        verify_token(response, data=DATA, roots=[tsa_pki.root])


def test_content_type_attribute_must_be_tst_info(tsa_pki: TSAPKI) -> None:
    response = reference_response(ec_spec(tsa_pki, content_type_attribute="data"))
    with pytest.raises(InvalidSignature, match="content-type"):
        verify_token(response, data=DATA, roots=[tsa_pki.root])


def test_reference_token_like_ours_verifies(tsa_pki: TSAPKI) -> None:
    # Guards the tests below: only the override makes them fail.
    verify_token(reference_response(ec_spec(tsa_pki)), data=DATA, roots=[tsa_pki.root], nonce=5)


def test_ess_cert_id_v1_with_sha1_certificate_hash_is_accepted(tsa_pki: TSAPKI) -> None:
    verify_token(reference_response(ec_spec(tsa_pki, ess_version=1)), data=DATA, roots=[tsa_pki.root])


def test_missing_signing_certificate_attribute_is_refused(tsa_pki: TSAPKI) -> None:
    with pytest.raises(SigningCertificateMismatch) as raised:
        verify_token(reference_response(ec_spec(tsa_pki, ess_version=0)), data=DATA, roots=[tsa_pki.root])
    assert raised.value.code == "timestamp.signing_certificate_mismatch"


@pytest.mark.parametrize("version", [1, 2])
def test_signing_certificate_naming_another_certificate_is_refused(tsa_pki: TSAPKI, version: int) -> None:
    # Same key, another certificate: the signature verifies, the ESSCertID does not.
    twin = issue_tsa_certificate(tsa_pki.tsa_key, tsa_pki.intermediate_key, tsa_pki.intermediate, name="Twin TSA")
    response = reference_response(ec_spec(tsa_pki, ess_certificate=twin, ess_version=version))
    with pytest.raises(SigningCertificateMismatch):
        verify_token(response, data=DATA, roots=[tsa_pki.root])


def test_signer_without_time_stamping_usage_is_not_a_tsa(tsa_pki: TSAPKI) -> None:
    certificate = issue_tsa_certificate(
        tsa_pki.tsa_key, tsa_pki.intermediate_key, tsa_pki.intermediate, eku=(ExtendedKeyUsageOID.CODE_SIGNING,)
    )
    response = reference_response(ec_spec(tsa_pki, certificate=certificate))
    with pytest.raises(NotATSACertificate) as raised:
        verify_token(response, data=DATA, roots=[tsa_pki.root])
    assert raised.value.code == "timestamp.not_tsa_certificate"


def test_non_critical_time_stamping_usage_is_not_a_tsa(tsa_pki: TSAPKI) -> None:
    certificate = issue_tsa_certificate(
        tsa_pki.tsa_key, tsa_pki.intermediate_key, tsa_pki.intermediate, eku_critical=False
    )
    with pytest.raises(NotATSACertificate):
        verify_token(reference_response(ec_spec(tsa_pki, certificate=certificate)), data=DATA, roots=[tsa_pki.root])


def test_sha1_imprint_is_refused(tsa_pki: TSAPKI) -> None:
    response = reference_response(ec_spec(tsa_pki, imprint_algorithm="sha1", imprint=hashlib.sha1(DATA).digest()))
    with pytest.raises(UnsupportedAlgorithm) as raised:
        verify_token(response, data=DATA, roots=[tsa_pki.root])
    assert raised.value.code == "timestamp.unsupported_algorithm"


def test_unknown_roots_are_untrusted(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    stranger_key = generate_key("ec-p256")
    stranger = issue_ca(stranger_key, "Stranger Root")
    with pytest.raises(UntrustedTimestamp) as raised:
        verify_token(issue(tsa), data=DATA, roots=[stranger])
    assert raised.value.code == "timestamp.untrusted"


def test_ca_with_the_same_name_but_another_key_is_untrusted(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    impostor = issue_ca(generate_key("ec-p256"), "Hengxin Test Root CA")
    with pytest.raises(UntrustedTimestamp):
        verify_token(issue(tsa), data=DATA, roots=[impostor])


def test_certificate_not_valid_at_gen_time_is_untrusted(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    response = issue(tsa)
    verify_token(response, data=DATA, roots=[tsa_pki.root], validation_time=datetime.now(UTC) + timedelta(days=30))
    with pytest.raises(UntrustedTimestamp, match="not valid"):
        verify_token(response, data=DATA, roots=[tsa_pki.root], validation_time=datetime.now(UTC) + timedelta(days=400))


def test_token_signed_by_another_tsa_than_the_pinned_one_is_untrusted(tsa: TSAService) -> None:
    other = build_tsa_pki("rsa")
    with pytest.raises(UntrustedTimestamp, match="expected TSA"):
        verify_token(issue(tsa), data=DATA, roots=[other.root], tsa_certificate=other.tsa_certificate)


def test_nonce_and_policy_must_match_when_given(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    response = issue(tsa, nonce=1)
    with pytest.raises(NonceMismatch) as nonce_error:
        verify_token(response, roots=[tsa_pki.root], nonce=2)
    assert nonce_error.value.code == "timestamp.nonce_mismatch"
    with pytest.raises(PolicyMismatch) as policy_error:
        verify_token(response, roots=[tsa_pki.root], policy=OTHER_POLICY)
    assert policy_error.value.code == "timestamp.policy_mismatch"


def test_rejection_response_is_not_granted(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    rejection = tsa.respond(b"junk").der
    with pytest.raises(TimestampNotGranted) as raised:
        verify_token(rejection, roots=[tsa_pki.root])
    assert raised.value.code == "timestamp.not_granted"
    assert raised.value.extra == {"status": "rejection", "failure_info": ["bad_data_format"]}


@pytest.mark.parametrize(
    "make",
    [
        lambda response: b"",
        lambda response: b"not DER",
        lambda response: response[:-20],
        lambda response: response + b"\x00",
        lambda response: build_request(DATA),
    ],
    ids=["empty", "garbage", "truncated", "trailing", "a-request"],
)
def test_malformed_input_is_reported_as_malformed(
    tsa_pki: TSAPKI, tsa: TSAService, make: Callable[[bytes], bytes]
) -> None:
    with pytest.raises(MalformedTimestamp) as raised:
        verify_token(make(issue(tsa)), roots=[tsa_pki.root])
    assert raised.value.code == "timestamp.malformed"


def test_contradictory_arguments_are_refused(tsa_pki: TSAPKI, tsa: TSAService) -> None:
    with pytest.raises(TimestampRequestInvalid):
        verify_token(issue(tsa), data=DATA, digest=b"x", roots=[tsa_pki.root])
    with pytest.raises(UntrustedTimestamp, match="no trusted root"):
        verify_token(issue(tsa), data=DATA, roots=[])


def test_every_verification_error_is_a_timestamp_error() -> None:
    for error in (
        ImprintMismatch,
        InvalidSignature,
        MalformedTimestamp,
        NonceMismatch,
        NotATSACertificate,
        PolicyMismatch,
        SigningCertificateMismatch,
        TimestampNotGranted,
        UntrustedTimestamp,
    ):
        assert issubclass(error, TimestampError)


def test_policy_default_is_used_for_requests_without_policy() -> None:
    tsa_pki = build_tsa_pki("ec-p256")
    tsa = tsa_pki.service(default_policy())
    assert verify_token(issue(tsa), roots=[tsa_pki.root]).policy == POLICY

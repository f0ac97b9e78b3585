"""rfc3161-client (strict, Rust/OpenSSL) and pyHanko's TST validation accept our responses.

pyHanko also covers Ed25519 tokens, which OpenSSL 3.0 cannot verify: its
PKCS#7 code (``openssl ts``) hashes before an EdDSA verification and its CMS
code (``openssl cms``) passes a digest to EdDSA and fails.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
import rfc3161_client
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext

from tests.unit.timestamp.tsa_pki import OTHER_POLICY, POLICY, TSAPKI, build_tsa_pki, default_policy
from timestamp.policy import Accuracy
from timestamp.request import build_request

DATA = b"Hengxin rfc3161-client interop\n"


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa"])
@pytest.mark.parametrize("algorithm", [rfc3161_client.HashAlgorithm.SHA256, rfc3161_client.HashAlgorithm.SHA512])
def test_rfc3161_client_request_and_verification(key_type: str, algorithm: rfc3161_client.HashAlgorithm) -> None:
    tsa_pki = build_tsa_pki(key_type)
    request = rfc3161_client.TimestampRequestBuilder().data(DATA).hash_algorithm(algorithm).build()

    response_der = tsa_pki.service().respond(request.as_bytes()).der
    response = rfc3161_client.decode_timestamp_response(response_der)

    assert response.status == rfc3161_client.PKIStatus.GRANTED
    assert response.tst_info.nonce == request.nonce
    assert response.tst_info.policy == x509.ObjectIdentifier(POLICY)
    assert response.tst_info.accuracy.seconds == 1
    assert response.tst_info.ordering is False
    verifier = (
        rfc3161_client.VerifierBuilder.from_request(request)
        .add_root_certificate(tsa_pki.root)
        .add_intermediate_certificate(tsa_pki.intermediate)
        .tsa_certificate(tsa_pki.tsa_certificate)
        .build()
    )
    assert verifier.verify_message(response, DATA)
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify_message(response, DATA + b"x")


def test_rfc3161_client_checks_our_requested_policy_and_fractional_time() -> None:
    tsa_pki = build_tsa_pki("ec-p256")
    tsa = tsa_pki.service(default_policy(accuracy=Accuracy(seconds=0, millis=0, micros=500)))
    response = rfc3161_client.decode_timestamp_response(
        tsa.respond(build_request(DATA, hash_algorithm="sha384", policy=OTHER_POLICY, nonce=99)).der
    )

    assert response.tst_info.accuracy.micros == 500
    verifier = rfc3161_client.VerifierBuilder(
        policy_id=x509.ObjectIdentifier(OTHER_POLICY),
        nonce=99,
        roots=[tsa_pki.root],
        intermediates=[tsa_pki.intermediate],
    ).build()
    assert verifier.verify(response, hashlib.sha384(DATA).digest())


def test_rfc3161_client_reads_our_rejections(tsa_pki: TSAPKI) -> None:
    response = rfc3161_client.decode_timestamp_response(tsa_pki.service().respond(b"garbage").der)
    assert response.status == rfc3161_client.PKIStatus.REJECTION


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa", "ed25519"])
def test_pyhanko_validates_our_tokens_as_intact_valid_and_trusted(key_type: str) -> None:
    tsa_pki = build_tsa_pki(key_type)
    response = tsa_pki.service().respond(build_request(DATA, hash_algorithm="sha256"))
    assert response.token is not None

    def asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))

    context = ValidationContext(
        trust_roots=[asn1(tsa_pki.root)],
        other_certs=[asn1(tsa_pki.intermediate)],
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    result = asyncio.run(
        validate_tst_signed_data(
            cms.ContentInfo.load(response.token)["content"], context, lambda name: hashlib.new(name, DATA).digest()
        )
    )

    assert result["intact"] and result["valid"]
    assert result["trust_problem_indic"] is None
    assert result["timestamp"] == response.record.gen_time

"""OCSP: request parsing (RFC 6960, RFC 8954 nonces) and response building, checked with cryptography's parser."""

from __future__ import annotations

import datetime
import hashlib
import time

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp

from ca._common import subject_public_key_bits
from ca.errors import CAError, IssuerInvalid, OCSPMalformedRequest, OCSPUnauthorized
from ca.ocsp import (
    CertID,
    CertificateStatus,
    IssuerHashes,
    OCSPSigner,
    build_ocsp_error,
    build_ocsp_response,
    parse_ocsp_request,
)
from ca.profiles import KeyType
from tests.fixtures.pki import PKI, build_pki

UTC = datetime.UTC
NOW = datetime.datetime(2030, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def frozen_pki() -> PKI:
    return build_pki(KeyType.EC_P256, now=NOW)


@pytest.fixture(scope="module")
def leaf(frozen_pki: PKI):
    return frozen_pki.issue("person-auth")


def make_request(pki: PKI, certificate: x509.Certificate, algorithm=hashes.SHA1(), nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, pki.sub_ca.certificate, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def asn1_request(cert_ids: list[dict], extensions: list[dict] | None = None, **tbs) -> bytes:
    """An OCSP request encoded by asn1crypto, for shapes cryptography's builder cannot make."""
    body = {"request_list": [{"req_cert": c} for c in cert_ids], **tbs}
    if extensions is not None:
        body["request_extensions"] = extensions
    return asn1_ocsp.OCSPRequest({"tbs_request": body}).dump()


def asn1_cert_id(pki: PKI, serial: int, algorithm: str = "sha1") -> dict:
    cert_id = CertID.create(pki.sub_ca.certificate, serial, algorithm)
    return {"hash_algorithm": {"algorithm": algorithm, "parameters": None},
            "issuer_name_hash": cert_id.issuer_name_hash, "issuer_key_hash": cert_id.issuer_key_hash,
            "serial_number": serial}


# --- requests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "name"), [(hashes.SHA1(), "sha1"), (hashes.SHA256(), "sha256"),
                                                   (hashes.SHA384(), "sha384"), (hashes.SHA512(), "sha512")])
def test_request_fields_are_parsed(frozen_pki: PKI, leaf, algorithm, name: str) -> None:
    der = make_request(frozen_pki, leaf.certificate, algorithm, nonce=b"\x01" * 16)
    info = parse_ocsp_request(der)
    reference = ocsp.load_der_ocsp_request(der)
    assert info.hash_algorithm == name
    assert info.issuer_name_hash == reference.issuer_name_hash
    assert info.issuer_key_hash == reference.issuer_key_hash
    assert info.serial == leaf.serial
    assert info.nonce == b"\x01" * 16
    assert len(info.cert_ids) == 1
    assert info.cert_id == CertID.create(frozen_pki.sub_ca.certificate, leaf.serial, name)


@pytest.mark.parametrize("length", [1, 16, 32])
def test_nonces_of_1_to_32_octets_are_accepted(frozen_pki: PKI, leaf, length: int) -> None:
    info = parse_ocsp_request(make_request(frozen_pki, leaf.certificate, nonce=bytes(range(length))))
    assert info.nonce == bytes(range(length))


def test_request_without_nonce(frozen_pki: PKI, leaf) -> None:
    assert parse_ocsp_request(make_request(frozen_pki, leaf.certificate)).nonce is None


@pytest.mark.parametrize("length", [0, 33, 128])
def test_nonce_outside_1_to_32_octets_is_malformed(frozen_pki: PKI, leaf, length: int) -> None:
    with pytest.raises(OCSPMalformedRequest) as info:
        parse_ocsp_request(make_request(frozen_pki, leaf.certificate, nonce=b"\xaa" * length))
    assert info.value.code == "ca.ocsp_malformed_request"
    assert info.value.ocsp_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_all_cert_ids_of_a_multiple_request_are_parsed(frozen_pki: PKI) -> None:
    der = asn1_request([asn1_cert_id(frozen_pki, 11), asn1_cert_id(frozen_pki, 12, "sha256")])
    info = parse_ocsp_request(der)
    assert [c.serial for c in info.cert_ids] == [11, 12]
    assert [c.hash_algorithm for c in info.cert_ids] == ["sha1", "sha256"]
    assert info.serial == 11 and info.hash_algorithm == "sha1"


def tlv(tag: int, content: bytes) -> bytes:
    """DER by hand, for requests neither cryptography nor asn1crypto will encode."""
    assert len(content) < 0x80
    return bytes((tag, len(content))) + content


SHA256_OID = bytes.fromhex("0609608648016503040201")


def cert_id_without_parameters(pki: PKI, serial: int) -> bytes:
    reference = CertID.create(pki.sub_ca.certificate, serial, "sha256")
    return tlv(0x30, tlv(0x30, SHA256_OID) + tlv(0x04, reference.issuer_name_hash)
               + tlv(0x04, reference.issuer_key_hash) + tlv(0x02, serial.to_bytes(1, "big")))


def request_by_hand(cert_id: bytes, extensions: bytes = b"") -> bytes:
    request_list = tlv(0x30, tlv(0x30, cert_id))
    return tlv(0x30, tlv(0x30, request_list + (tlv(0xA2, tlv(0x30, extensions)) if extensions else b"")))


def test_cert_id_without_hash_parameters_is_kept_as_sent(frozen_pki: PKI) -> None:
    raw = cert_id_without_parameters(frozen_pki, 99)
    cert_id = parse_ocsp_request(request_by_hand(raw)).cert_id
    assert cert_id.der == raw
    assert cert_id == CertID.create(frozen_pki.sub_ca.certificate, 99, "sha256")


def test_unknown_non_critical_extension_is_ignored_and_critical_one_refused(frozen_pki: PKI) -> None:
    extension = {"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}
    assert parse_ocsp_request(asn1_request([asn1_cert_id(frozen_pki, 1)], [extension])).nonce is None
    extension["critical"] = True
    with pytest.raises(OCSPMalformedRequest):
        parse_ocsp_request(asn1_request([asn1_cert_id(frozen_pki, 1)], [extension]))


def test_signed_request_is_accepted_without_checking_the_signature(frozen_pki: PKI) -> None:
    request = asn1_ocsp.OCSPRequest({
        "tbs_request": {"request_list": [{"req_cert": asn1_cert_id(frozen_pki, 5)}]},
        "optional_signature": {"signature_algorithm": {"algorithm": "sha256_ecdsa"}, "signature": b"\x00" * 8},
    })
    assert parse_ocsp_request(request.dump()).serial == 5


NONCE_OID = bytes.fromhex("06092b0601050507300102")


def test_nonce_that_is_not_an_octet_string_is_malformed(frozen_pki: PKI) -> None:
    raw = cert_id_without_parameters(frozen_pki, 1)
    good = tlv(0x30, NONCE_OID + tlv(0x04, tlv(0x04, b"12345678")))
    assert parse_ocsp_request(request_by_hand(raw, good)).nonce == b"12345678"
    for value in (tlv(0x02, b"\x05"), b"12345678", tlv(0x04, b"1234") + b"x"):
        with pytest.raises(OCSPMalformedRequest):
            parse_ocsp_request(request_by_hand(raw, tlv(0x30, NONCE_OID + tlv(0x04, value))))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda der: b"",
        lambda der: b"garbage",
        lambda der: der[:-1],
        lambda der: der + b"\x00",
        lambda der: b"\x30\x80" + der[2:] + b"\x00\x00",  # BER indefinite length
        lambda der: b"\x30\x81" + der[1:],  # non-minimal length
        lambda der: b"\x31" + der[1:],  # SET instead of SEQUENCE
        lambda der: b"\x30" + b"\xff" * 10,
    ],
    ids=["empty", "garbage", "truncated", "trailing", "indefinite", "non-minimal-length", "wrong-tag", "junk"],
)
def test_malformed_requests_are_refused(frozen_pki: PKI, leaf, mutate) -> None:
    with pytest.raises(OCSPMalformedRequest):
        parse_ocsp_request(mutate(make_request(frozen_pki, leaf.certificate, nonce=b"n" * 16)))


@pytest.mark.parametrize(
    "der",
    [
        lambda pki: asn1_request([]),
        lambda pki: asn1_request([asn1_cert_id(pki, 1)], version=1),
        lambda pki: asn1_request([{**asn1_cert_id(pki, 1), "issuer_name_hash": b"\x00" * 19}]),
        lambda pki: asn1_request([asn1_cert_id(pki, 1)], [
            {"extn_id": "nonce", "critical": False, "extn_value": b"\x04\x01\x01"},
            {"extn_id": "nonce", "critical": False, "extn_value": b"\x04\x01\x02"},
        ]),
    ],
    ids=["no-certificate", "version-2", "short-hash", "two-nonces"],
)
def test_structurally_wrong_requests_are_malformed(frozen_pki: PKI, der) -> None:
    with pytest.raises(OCSPMalformedRequest):
        parse_ocsp_request(der(frozen_pki))


def test_oversized_request_is_malformed() -> None:
    with pytest.raises(OCSPMalformedRequest):
        parse_ocsp_request(b"\x30\x83\x01\x00\x00" + b"\x00" * 0x10000)


# --- issuer matching ------------------------------------------------------------------------------------


def test_issuer_hashes_match_sha1_and_sha256_cert_ids_of_their_ca_only(frozen_pki: PKI, leaf) -> None:
    sub_ca = IssuerHashes.from_certificate(frozen_pki.sub_ca.certificate)
    root = IssuerHashes.from_certificate(frozen_pki.root.certificate)
    for algorithm in (hashes.SHA1(), hashes.SHA256()):
        cert_id = parse_ocsp_request(make_request(frozen_pki, leaf.certificate, algorithm)).cert_id
        assert sub_ca.matches(cert_id)
        assert not root.matches(cert_id)
    index = {key: "sub" for key in sub_ca.lookup_keys()} | {key: "root" for key in root.lookup_keys()}
    assert index[CertID.create(frozen_pki.root.certificate, 1, "sha256").issuer_lookup_key] == "root"


def test_cert_id_with_an_unknown_hash_matches_no_issuer(frozen_pki: PKI) -> None:
    cert_id = asn1_cert_id(frozen_pki, 1)
    cert_id["hash_algorithm"] = {"algorithm": "md5", "parameters": None}
    cert_id["issuer_name_hash"] = cert_id["issuer_key_hash"] = b"\x00" * 16
    info = parse_ocsp_request(asn1_request([cert_id]))
    assert info.hash_algorithm == "1.2.840.113549.2.5"
    assert not IssuerHashes.from_certificate(frozen_pki.sub_ca.certificate).matches(info.cert_id)


# --- responses ------------------------------------------------------------------------------------------


def verify_response_signature(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> None:
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(),
                   response.signature_hash_algorithm)
    else:
        assert isinstance(key, ed25519.Ed25519PublicKey)
        key.verify(response.signature, response.tbs_response_bytes)


def respond(pki: PKI, request_der: bytes, status: CertificateStatus, signer: OCSPSigner | None = None) -> bytes:
    info = parse_ocsp_request(request_der)
    return build_ocsp_response(
        info.cert_id, status, signer or pki.ocsp_signer(), produced_at=NOW + datetime.timedelta(seconds=30),
        this_update=NOW, next_update=NOW + datetime.timedelta(hours=4), nonce=info.nonce,
    )


def test_good_response_has_every_required_field(frozen_pki: PKI, leaf) -> None:
    request = make_request(frozen_pki, leaf.certificate, nonce=b"\x42" * 16)
    response = ocsp.load_der_ocsp_response(respond(frozen_pki, request, CertificateStatus.good()))
    responder = frozen_pki.ocsp_responder.certificate
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == leaf.serial
    assert response.produced_at_utc == NOW + datetime.timedelta(seconds=30)
    assert response.this_update_utc == NOW
    assert response.next_update_utc == NOW + datetime.timedelta(hours=4)
    assert response.responder_name is None
    assert response.responder_key_hash == hashlib.sha1(subject_public_key_bits(responder.public_key())).digest()
    assert response.certificates == [responder]
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x42" * 16
    reference = ocsp.load_der_ocsp_request(request)
    assert (response.issuer_name_hash, response.issuer_key_hash) == (
        reference.issuer_name_hash, reference.issuer_key_hash)
    verify_response_signature(response, responder)


def test_revoked_response_reports_time_and_reason(frozen_pki: PKI, leaf) -> None:
    revoked_at = NOW - datetime.timedelta(days=2)
    der = respond(frozen_pki, make_request(frozen_pki, leaf.certificate),
                  CertificateStatus.revoked(revoked_at, x509.ReasonFlags.key_compromise))
    response = ocsp.load_der_ocsp_response(der)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == revoked_at
    assert response.revocation_reason is x509.ReasonFlags.key_compromise
    assert len(response.extensions) == 0


@pytest.mark.parametrize("reason", [None, x509.ReasonFlags.unspecified])
def test_revoked_without_a_reason_omits_it(frozen_pki: PKI, leaf, reason) -> None:
    der = respond(frozen_pki, make_request(frozen_pki, leaf.certificate), CertificateStatus.revoked(NOW, reason))
    assert ocsp.load_der_ocsp_response(der).revocation_reason is None


def test_unknown_response(frozen_pki: PKI) -> None:
    request = asn1_request([asn1_cert_id(frozen_pki, 424242)])
    response = ocsp.load_der_ocsp_response(respond(frozen_pki, request, CertificateStatus.unknown()))
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert response.serial_number == 424242


def test_response_repeats_the_cert_id_byte_for_byte(frozen_pki: PKI) -> None:
    raw = cert_id_without_parameters(frozen_pki, 77)
    response = respond(frozen_pki, request_by_hand(raw), CertificateStatus.good())
    assert raw in response
    assert ocsp.load_der_ocsp_response(response).serial_number == 77


@pytest.mark.parametrize("key_type", [KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519])
def test_responses_are_signed_with_every_responder_key_type(pki_factory, key_type: KeyType) -> None:
    pki = pki_factory(key_type)
    leaf = pki.issue("dr-probe")
    response = ocsp.load_der_ocsp_response(
        respond(pki, make_request(pki, leaf.certificate), CertificateStatus.good()))
    verify_response_signature(response, pki.ocsp_responder.certificate)


def test_building_is_a_function_of_inputs_and_clock(pki_factory) -> None:
    pki = pki_factory(KeyType.ED25519)  # deterministic signatures
    request = make_request(pki, pki.issue("dr-probe").certificate, nonce=b"x" * 8)
    assert respond(pki, request, CertificateStatus.good()) == respond(pki, request, CertificateStatus.good())


@pytest.mark.parametrize(
    "status",
    [ocsp.OCSPResponseStatus.MALFORMED_REQUEST, ocsp.OCSPResponseStatus.INTERNAL_ERROR,
     ocsp.OCSPResponseStatus.TRY_LATER, ocsp.OCSPResponseStatus.SIG_REQUIRED,
     ocsp.OCSPResponseStatus.UNAUTHORIZED],
)
def test_error_responses(status: ocsp.OCSPResponseStatus) -> None:
    assert ocsp.load_der_ocsp_response(build_ocsp_error(status)).response_status is status


def test_successful_is_not_an_error_status() -> None:
    with pytest.raises(CAError):
        build_ocsp_error(ocsp.OCSPResponseStatus.SUCCESSFUL)


def test_errors_name_their_ocsp_status() -> None:
    assert OCSPUnauthorized().ocsp_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert OCSPUnauthorized().code == "ca.ocsp_unauthorized"


def test_signer_needs_an_ocsp_signing_certificate_and_its_key(frozen_pki: PKI) -> None:
    with pytest.raises(IssuerInvalid):
        OCSPSigner.create(frozen_pki.sub_ca.certificate, frozen_pki.sub_ca.key)
    with pytest.raises(IssuerInvalid):
        OCSPSigner.create(frozen_pki.ocsp_responder.certificate, frozen_pki.sub_ca.key)


@pytest.mark.parametrize(
    "changes",
    [{"produced_at": datetime.datetime(2030, 1, 1)}, {"next_update": NOW}, {"nonce": b"x" * 33}],
    ids=["naive", "next-update-not-after-this-update", "nonce-too-long"],
)
def test_response_caller_bugs_raise_ca_error(frozen_pki: PKI, changes) -> None:
    arguments = dict(produced_at=NOW, this_update=NOW, next_update=NOW + datetime.timedelta(hours=1), nonce=None)
    arguments.update(changes)
    with pytest.raises(CAError):
        build_ocsp_response(CertID.create(frozen_pki.sub_ca.certificate, 1), CertificateStatus.good(),
                            frozen_pki.ocsp_signer(), **arguments)


def test_status_values_are_checked() -> None:
    with pytest.raises(CAError):
        CertificateStatus(ocsp.OCSPCertStatus.REVOKED)
    with pytest.raises(CAError):
        CertificateStatus(ocsp.OCSPCertStatus.GOOD, revocation_time=NOW)
    with pytest.raises(CAError):
        CertificateStatus.revoked(NOW, x509.ReasonFlags.remove_from_crl)


def test_parse_and_respond_cost(frozen_pki: PKI, leaf) -> None:
    """Informational: time to parse a request and build a signed response with an EC P-256 responder."""
    request = make_request(frozen_pki, leaf.certificate, nonce=b"n" * 16)
    signer = frozen_pki.ocsp_signer()
    count = 2000
    started = time.perf_counter()
    for _ in range(count):
        info = parse_ocsp_request(request)
        build_ocsp_response(info.cert_id, CertificateStatus.good(), signer, produced_at=NOW, this_update=NOW,
                            next_update=NOW + datetime.timedelta(hours=1), nonce=info.nonce)
    elapsed = time.perf_counter() - started
    print(f"\nOCSP parse + build + sign (P-256): {elapsed / count * 1e6:.0f} µs per response")

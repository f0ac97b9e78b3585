"""Small pure pieces of the CA service: references, revocation reasons, PKCS #12 passwords, purposes."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from ca.pkcs12 import KDF_ROUNDS, check_password, export_pkcs12, generate_private_key
from ca.profiles import KeyType
from ca.service import REVOCATION_REASONS, normalise_reason
from ca.service_errors import CertificateNotFound, PKCS12PasswordInvalid, RevocationInvalid
from ca.store import parse_reference, subject_alt_names, subject_mapping
from ca.validation import PURPOSES, check_purpose
from tests.fixtures.pki import PKI


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (42, ("id", 42)),
        ("42", ("id", 42)),
        ("id:7", ("id", 7)),
        ("7f3a9c0d11223344", ("serial", 0x7F3A9C0D11223344)),
        ("7F:3A:9C:0D:11:22:33:44", ("serial", 0x7F3A9C0D11223344)),
        ("0x1234", ("serial", 0x1234)),
        ("serial:12", ("serial", 0x12)),
        ("1234567890123456", ("serial", 0x1234567890123456)),  # 16 digits: too long for an id
    ],
)
def test_references_name_an_id_or_a_serial(reference, expected) -> None:
    assert parse_reference(reference) == expected


@pytest.mark.parametrize("reference", ["", "zz", "id:abc", "serial:xyz", "1" * 50])
def test_nonsense_references_are_not_found(reference: str) -> None:
    with pytest.raises(CertificateNotFound):
        parse_reference(reference)


def test_revocation_reasons_are_rfc5280_names() -> None:
    assert normalise_reason("keyCompromise") == "keyCompromise"
    assert normalise_reason("KEY_COMPROMISE") == "keyCompromise"
    assert normalise_reason("ca_compromise") == "cACompromise"
    assert normalise_reason("certificate_hold") == "certificateHold"
    assert normalise_reason("") == "unspecified"
    assert "removeFromCRL" not in REVOCATION_REASONS and len(REVOCATION_REASONS) == 9
    for reason in REVOCATION_REASONS:
        assert x509.ReasonFlags(normalise_reason(reason)).value == reason
    with pytest.raises(RevocationInvalid):
        normalise_reason("removeFromCRL")
    with pytest.raises(RevocationInvalid) as error:
        normalise_reason("bored")
    assert error.value.code == "ca.revocation_invalid" and "keyCompromise" in error.value.extra["reasons"]


@pytest.mark.parametrize(("password", "rule"), [(None, "required"), ("", "required"), ("short", "min_length"),
                                                ("twelve chars\n", "characters"), ("x" * 2000, "characters")])
def test_weak_pkcs12_passwords_are_refused(password, rule) -> None:
    with pytest.raises(PKCS12PasswordInvalid) as error:
        check_password(password)
    assert error.value.extra["rule"] == rule


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.ED25519])
def test_pkcs12_round_trip_with_pbes2_aes(pki: PKI, key_type: KeyType) -> None:
    key = generate_private_key(key_type)
    issued = pki.issue("person-auth", key=key)
    blob = export_pkcs12(key, issued.certificate, [pki.sub_ca.certificate, pki.root.certificate],
                         "a long enough password", friendly_name="张伟")
    loaded = pkcs12.load_pkcs12(blob, b"a long enough password")
    assert loaded.cert.certificate == issued.certificate
    assert loaded.cert.friendly_name == "张伟".encode()
    assert [c.certificate for c in loaded.additional_certs] == [pki.sub_ca.certificate, pki.root.certificate]
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(blob, b"another password!!")
    assert KDF_ROUNDS >= 100_000


def test_subject_and_names_are_read_back_from_a_certificate(pki: PKI) -> None:
    issued = pki.issue("server-tls").certificate
    assert subject_mapping(issued.subject) == {"C": "CN", "O": "某某县人民政府", "CN": "portal.example.gov.cn"}
    names = subject_alt_names(issued)
    assert names.dns == ("portal.example.gov.cn", "www.example.gov.cn") and str(names.ip[0]) == "192.0.2.10"


def test_purposes_check_key_usage_and_extended_key_usage(pki: PKI) -> None:
    tls = pki.issue("server-tls").certificate
    tsa = pki.issue("tsa").certificate
    assert check_purpose(tls, "server-auth").satisfied
    assert not check_purpose(tls, "client-auth").satisfied
    assert check_purpose(tsa, "timestamping").satisfied
    refused = check_purpose(tsa, "server-auth")
    assert not refused.satisfied and "serverAuth" in (refused.reason or "")
    assert check_purpose(pki.sub_ca.certificate, "certificate-signing").satisfied
    assert not check_purpose(tls, "certificate-signing").satisfied
    assert set(PURPOSES) >= {"any", "server-auth", "client-auth", "document-signing", "timestamping"}

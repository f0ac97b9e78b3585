"""Parsing certificate signing requests: PEM and DER, signatures, keys, and every error path."""

from __future__ import annotations

import ipaddress

import pytest
from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.certificates import MAX_CSR_SIZE, parse_csr
from ca.errors import CSRInvalid, CSRSignatureInvalid, UnsupportedKey
from ca.profiles import KeyType
from tests.fixtures.pki import generate_key


def make_csr(key=None, algorithm=hashes.SHA256(), sans: list[x509.GeneralName] | None = None) -> bytes:
    key = key or generate_key(KeyType.EC_P256)
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "某某县人民政府"),
        x509.NameAttribute(NameOID.COMMON_NAME, "张伟"),
        x509.NameAttribute(NameOID.TITLE, "科员"),
    ]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.DER)


def to_pem(der: bytes) -> bytes:
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519])
def test_pem_and_der_csrs_are_parsed(key_type: KeyType) -> None:
    key = generate_key(key_type)
    der = make_csr(key, None if key_type is KeyType.ED25519 else hashes.SHA256())
    for data in (der, to_pem(der)):
        csr = parse_csr(data)
        assert csr.key_type is key_type
        assert csr.der == der
        assert csr.public_key == key.public_key()
        assert csr.subject_attributes == {"C": ("CN",), "O": ("某某县人民政府",), "CN": ("张伟",),
                                          "2.5.4.12": ("科员",)}


def test_requested_subject_alternative_names_are_extracted() -> None:
    der = make_csr(sans=[
        x509.DNSName("portal.example.gov.cn"), x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
        x509.RFC822Name("zhang.wei@example.gov.cn"), x509.UniformResourceIdentifier("https://example.gov.cn/"),
        x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01a"),
    ])
    csr = parse_csr(der)
    assert csr.sans.dns == ("portal.example.gov.cn",)
    assert csr.sans.ip == (ipaddress.ip_address("192.0.2.1"),)
    assert csr.sans.email == ("zhang.wei@example.gov.cn",)
    assert csr.sans.uri == ("https://example.gov.cn/",)
    assert len(csr.requested_extensions.get_extension_for_class(x509.SubjectAlternativeName).value) == 5


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x03\x02\x01\x00",
     b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", b"\x30" * 10],
    ids=["empty", "text", "wrong-structure", "bad-pem", "truncated"],
)
def test_garbage_is_an_invalid_csr(data: bytes) -> None:
    with pytest.raises(CSRInvalid) as info:
        parse_csr(data)
    assert info.value.code == "ca.csr_invalid"


def test_truncated_csr_is_invalid() -> None:
    with pytest.raises(CSRInvalid) as info:
        parse_csr(make_csr()[:-10])
    assert info.value.code == "ca.csr_invalid"


def test_oversized_csr_is_invalid() -> None:
    with pytest.raises(CSRInvalid):
        parse_csr(b"\x30" + b"\x00" * MAX_CSR_SIZE)


def test_certificate_instead_of_csr_is_invalid(pki) -> None:
    with pytest.raises(CSRInvalid):
        parse_csr(pki.root.pem)


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519])
def test_csr_with_a_flipped_signature_byte_is_refused(key_type: KeyType) -> None:
    key = generate_key(key_type)
    der = bytearray(make_csr(key, None if key_type is KeyType.ED25519 else hashes.SHA256()))
    der[-1] ^= 0x01  # the last octet belongs to the signature BIT STRING
    with pytest.raises(CSRSignatureInvalid) as info:
        parse_csr(bytes(der))
    assert info.value.code == "ca.csr_signature_invalid"
    with pytest.raises(CSRSignatureInvalid):
        parse_csr(to_pem(bytes(der)))


def test_csr_with_a_changed_subject_fails_its_signature() -> None:
    der = make_csr()
    tampered = der.replace("张伟".encode(), "李四".encode())
    assert tampered != der
    with pytest.raises(CSRSignatureInvalid):
        parse_csr(tampered)


def test_csr_with_an_unsupported_key_is_refused() -> None:
    with pytest.raises(UnsupportedKey) as info:
        parse_csr(make_csr(ec.generate_private_key(ec.SECP521R1()), hashes.SHA512()))
    assert info.value.code == "ca.unsupported_key"


def resign_with_sha1(der: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Re-sign a CSR with ECDSA-SHA1 (cryptography no longer signs CSRs with SHA-1)."""
    request = asn1_csr.CertificationRequest.load(der)
    info = request["certification_request_info"].dump()
    signature = key.sign(info, ec.ECDSA(hashes.SHA1()))
    return asn1_csr.CertificationRequest({
        "certification_request_info": asn1_csr.CertificationRequestInfo.load(info),
        "signature_algorithm": {"algorithm": "sha1_ecdsa"},
        "signature": signature,
    }).dump()


def test_csr_signed_with_sha1_is_refused() -> None:
    key = generate_key(KeyType.EC_P256)
    der = resign_with_sha1(make_csr(key), key)
    with pytest.raises(CSRInvalid) as info:
        parse_csr(der)
    assert type(info.value) is CSRInvalid


def test_csr_must_be_bytes() -> None:
    with pytest.raises(CSRInvalid):
        parse_csr("-----BEGIN CERTIFICATE REQUEST-----")  # type: ignore[arg-type]

"""pkilint reports no WARNING, ERROR or FATAL finding for what the CA produces."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from ca.certificates import NameConstraints, PublicationURLs, build_certificate, new_serial
from ca.ocsp import CertificateStatus, build_ocsp_response, parse_ocsp_request
from ca.profiles import KeyType
from tests.fixtures.pki import BASE_URL, SAMPLE_REQUESTS, generate_key
from tests.interop.ca.conftest import lint_certificate, lint_chain, lint_ocsp, lint_revocation_list, serious

ISSUER_KEY_TYPES = [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519]


def _write(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("issuer_key_type", ISSUER_KEY_TYPES)
def test_certificates_of_every_profile_pass_pkilint(pki_factory, tmp_path: Path, issuer_key_type: KeyType) -> None:
    pki = pki_factory(issuer_key_type)
    root = _write(tmp_path / "root.pem", pki.root.certificate)
    sub_ca = _write(tmp_path / "sub-ca.pem", pki.sub_ca.certificate)
    assert serious(lint_certificate(root)) == []
    assert serious(lint_certificate(sub_ca)) == []
    assert serious(lint_chain(root, sub_ca)) == []
    for profile_name in SAMPLE_REQUESTS:
        leaf_key_type = KeyType.RSA_2048 if profile_name == "server-tls" else issuer_key_type
        path = _write(tmp_path / f"{profile_name}.pem", pki.issue(profile_name, key_type=leaf_key_type).certificate)
        findings = lint_certificate(path)
        assert serious(findings) == [], profile_name
        # The only finding at all is pkilint recognising our key identifier method.
        assert {code for _, code, _ in findings} <= {"pkix.subject_key_identifier_rfc7093_method_1_identified"}
        assert serious(lint_chain(sub_ca, path)) == [], profile_name


def test_name_constrained_sub_ca_passes_pkilint(pki, tmp_path: Path) -> None:
    key = generate_key(KeyType.EC_P256)
    now = datetime.datetime.now(datetime.UTC)
    certificate = build_certificate(
        pki.profiles.get("sub-ca"), issuer_cert=pki.root.certificate, issuer_key=pki.root.key,
        subject={"C": "CN", "O": "某某县人民政府", "CN": "受限二级 CA"}, public_key=key.public_key(),
        serial=new_serial(), not_before=now, not_after=now + datetime.timedelta(days=365),
        urls=PublicationURLs(BASE_URL, "root"),
        name_constraints=NameConstraints(permitted_dns=("example.gov.cn",), permitted_email=(".example.gov.cn",),
                                         excluded_ip=("0.0.0.0/0", "::/0"),
                                         permitted_directory_names=({"C": "CN", "O": "某某县人民政府"},)),
    )
    assert serious(lint_certificate(_write(tmp_path / "nc.pem", certificate))) == []


@pytest.mark.parametrize("issuer_key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519])
def test_crl_and_arl_pass_pkilint(pki_factory, tmp_path: Path, issuer_key_type: KeyType) -> None:
    pki = pki_factory(issuer_key_type)
    now = pki.now
    crl = pki.crl([(1001, now, x509.ReasonFlags.key_compromise, now - datetime.timedelta(days=1)),
                   (1002, now, None, None), (1003, now, x509.ReasonFlags.certificate_hold, None)])
    (tmp_path / "crl.der").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    assert serious(lint_revocation_list(tmp_path / "crl.der")) == []
    arl = pki.crl([(pki.sub_ca.serial + 1, now, x509.ReasonFlags.ca_compromise, None)], issuer=pki.root)
    (tmp_path / "arl.der").write_bytes(arl.public_bytes(serialization.Encoding.DER))
    assert serious(lint_revocation_list(tmp_path / "arl.der", "ARL")) == []


@pytest.mark.parametrize("issuer_key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519])
def test_ocsp_responses_pass_pkilint(pki_factory, tmp_path: Path, issuer_key_type: KeyType) -> None:
    pki = pki_factory(issuer_key_type)
    leaf = pki.issue("person-sign")
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf.certificate, pki.sub_ca.certificate, hashes.SHA1())
    request = request.add_extension(x509.OCSPNonce(b"\x07" * 16), critical=False)
    info = parse_ocsp_request(request.build().public_bytes(serialization.Encoding.DER))
    statuses = {
        "good": CertificateStatus.good(),
        "revoked": CertificateStatus.revoked(pki.now - datetime.timedelta(hours=1), x509.ReasonFlags.superseded),
        "unknown": CertificateStatus.unknown(),
    }
    for name, status in statuses.items():
        der = build_ocsp_response(info.cert_id, status, pki.ocsp_signer(), produced_at=pki.now,
                                  this_update=pki.now, next_update=pki.now + datetime.timedelta(hours=4),
                                  nonce=info.nonce)
        path = tmp_path / f"{name}.der"
        path.write_bytes(der)
        assert serious(lint_ocsp(path)) == [], name


def test_pkilint_reports_errors_for_a_faulty_certificate_and_crl(tmp_path: Path) -> None:
    """Negative control: the linters do find errors, so an empty report above means something."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faulty")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
        .sign(key, hashes.SHA256())
    )
    codes = {code for _, code, _ in serious(lint_certificate(_write(tmp_path / "faulty.pem", certificate)))}
    assert "pkix.basic_constraints_extension_not_critical" in codes
    crl = (x509.CertificateRevocationListBuilder().issuer_name(name).last_update(now)
           .next_update(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "faulty.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    codes = {code for _, code, _ in serious(lint_revocation_list(tmp_path / "faulty.crl"))}
    assert "pkix.crl_number_missing" in codes

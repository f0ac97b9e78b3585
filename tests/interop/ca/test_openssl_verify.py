"""``openssl verify -x509_strict`` accepts the certificates of every profile, for every issuer key type."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca.certificates import NameConstraints, PublicationURLs, build_certificate, new_serial
from ca.profiles import KeyType, SubjectAltNames
from tests.fixtures.pki import BASE_URL, PKI, Issued, generate_key

ISSUER_KEY_TYPES = [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519]
# The openssl purpose each end-entity profile is for.
PURPOSES = {
    "person-auth": "sslclient",
    "person-sign": "smimesign",
    "organisation-seal": "smimesign",
    "server-tls": "sslserver",
    "tsa": "timestampsign",
    "ocsp-responder": "ocsphelper",
    "dr-probe": "sslclient",
}


def _verify(openssl, files: dict[str, Path], leaf: Path, *extra: str | Path):
    return openssl("verify", "-x509_strict", *extra, "-CAfile", files["root"], "-untrusted", files["sub_ca"], leaf)


@pytest.mark.parametrize("issuer_key_type", ISSUER_KEY_TYPES)
def test_openssl_verifies_the_sub_ca_and_every_end_entity_profile(
    openssl, pki_factory, tmp_path: Path, issuer_key_type: KeyType
) -> None:
    pki: PKI = pki_factory(issuer_key_type)
    files = pki.write(tmp_path)
    result = openssl("verify", "-x509_strict", "-CAfile", files["root"], files["sub_ca"])
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result.stderr
    for profile_name, purpose in PURPOSES.items():
        leaf_key_types = {issuer_key_type, KeyType.EC_P256}
        if profile_name == "server-tls":
            leaf_key_types = {KeyType.EC_P256, KeyType.RSA_2048}
        for leaf_key_type in leaf_key_types:
            path = tmp_path / f"{profile_name}-{leaf_key_type}.pem"
            path.write_bytes(pki.issue(profile_name, key_type=leaf_key_type).pem)
            for extra in ((), ("-purpose", purpose)):
                result = _verify(openssl, files, path, *extra)
                assert result.returncode == 0, (profile_name, leaf_key_type, extra, result.stdout, result.stderr)
                assert result.stdout.strip() == f"{path}: OK"


def test_openssl_refuses_a_leaf_under_another_root(openssl, pki_factory, tmp_path: Path) -> None:
    """Negative control: the verification above would notice a broken chain."""
    files = pki_factory(KeyType.EC_P256).write(tmp_path / "a")
    other = pki_factory(KeyType.ED25519).write(tmp_path / "b")
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pki_factory(KeyType.EC_P256).issue("person-auth").pem)
    result = _verify(openssl, {"root": other["root"], "sub_ca": files["sub_ca"]}, leaf)
    assert result.returncode != 0


def test_openssl_refuses_a_certificate_for_the_wrong_purpose(openssl, pki: PKI, tmp_path: Path) -> None:
    files = pki.write(tmp_path)
    leaf = tmp_path / "tsa.pem"
    leaf.write_bytes(pki.issue("tsa").pem)
    result = _verify(openssl, files, leaf, "-purpose", "sslserver")
    assert result.returncode != 0 and "unsuitable certificate purpose" in result.stdout + result.stderr


def test_openssl_enforces_the_sub_ca_name_constraints(openssl, pki: PKI, tmp_path: Path) -> None:
    files = pki.write(tmp_path)
    now = pki.now
    key = generate_key(KeyType.EC_P256)
    constrained = build_certificate(
        pki.profiles.get("sub-ca"), issuer_cert=pki.root.certificate, issuer_key=pki.root.key,
        subject={"C": "CN", "O": "某某县人民政府", "CN": "受限二级 CA"}, public_key=key.public_key(),
        serial=new_serial(), not_before=now - datetime.timedelta(hours=2), not_after=now + datetime.timedelta(days=400),
        urls=PublicationURLs(BASE_URL, "root"),
        name_constraints=NameConstraints(permitted_dns=("example.gov.cn",),
                                         permitted_directory_names=({"C": "CN", "O": "某某县人民政府"},)),
    )
    constrained_ca = PKI(now, pki.profiles, pki.root, Issued(constrained, key), pki.ocsp_responder,
                         PublicationURLs(BASE_URL, "constrained"))
    files["sub_ca"].write_bytes(constrained_ca.sub_ca.pem)
    inside = tmp_path / "inside.pem"
    inside.write_bytes(constrained_ca.issue("server-tls").pem)
    result = _verify(openssl, files, inside)
    assert result.returncode == 0, result.stdout + result.stderr
    outside = tmp_path / "outside.pem"
    outside.write_bytes(constrained_ca.issue(
        "server-tls", {"C": "CN", "O": "某某县人民政府", "CN": "portal.example.com"},
        sans=SubjectAltNames(dns=("portal.example.com",))).pem)
    result = _verify(openssl, files, outside)
    assert result.returncode != 0 and "permitted subtree violation" in result.stdout + result.stderr


def test_openssl_finds_a_revoked_leaf_in_the_crl(openssl, pki: PKI, tmp_path: Path) -> None:
    files = pki.write(tmp_path)
    good, revoked = pki.issue("person-auth"), pki.issue("person-auth")
    crl = pki.crl([(revoked.serial, pki.now, x509.ReasonFlags.key_compromise, None)], crl_number=3)
    arl = pki.crl([], issuer=pki.root)
    crls = tmp_path / "crls.pem"
    crls.write_bytes(crl.public_bytes(serialization.Encoding.PEM) + arl.public_bytes(serialization.Encoding.PEM))
    for name, issued in (("good", good), ("revoked", revoked)):
        (tmp_path / f"{name}.pem").write_bytes(issued.pem)
    result = _verify(openssl, files, tmp_path / "good.pem", "-crl_check_all", "-CRLfile", crls)
    assert result.returncode == 0, result.stdout + result.stderr
    result = _verify(openssl, files, tmp_path / "revoked.pem", "-crl_check_all", "-CRLfile", crls)
    assert result.returncode != 0 and "certificate revoked" in result.stdout + result.stderr


def test_openssl_shows_the_chinese_subject_in_utf8(openssl, pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "leaf.pem"
    path.write_bytes(pki.issue("person-auth").pem)
    result = openssl("x509", "-in", path, "-noout", "-subject", "-nameopt", "utf8,sep_comma_plus")
    assert result.stdout.strip() == "subject=C=CN,O=某某县人民政府,OU=办公室,CN=张伟"


def test_openssl_csrs_are_parsed(openssl, tmp_path: Path) -> None:
    """CSRs made by openssl req (EC, RSA, Ed25519; PEM and DER) parse, with subject and SANs."""
    from ca.certificates import parse_csr

    for algorithm, options in (("ec", ["-pkeyopt", "ec_paramgen_curve:P-256"]),
                               ("rsa", ["-pkeyopt", "rsa_keygen_bits:2048"]), ("ed25519", [])):
        key = tmp_path / f"{algorithm}.key"
        csr = tmp_path / f"{algorithm}.csr"
        result = openssl("req", "-new", "-newkey", algorithm, *options, "-nodes", "-keyout", key, "-out", csr,
                         "-utf8", "-subj", "/C=CN/O=某某县人民政府/CN=张伟",
                         "-addext", "subjectAltName=email:zhang.wei@example.gov.cn,DNS:a.example.gov.cn")
        assert result.returncode == 0, result.stderr
        der = openssl("req", "-in", csr, "-outform", "DER", "-out", tmp_path / f"{algorithm}.der")
        assert der.returncode == 0
        for data in (csr.read_bytes(), (tmp_path / f"{algorithm}.der").read_bytes()):
            parsed = parse_csr(data)
            assert parsed.subject_attributes == {"C": ("CN",), "O": ("某某县人民政府",), "CN": ("张伟",)}
            assert parsed.sans == SubjectAltNames(dns=("a.example.gov.cn",), email=("zhang.wei@example.gov.cn",))

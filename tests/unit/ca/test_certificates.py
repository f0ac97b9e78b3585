"""Certificate building: every profile's extensions, the subject, the issuer checks and every error path."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID

from ca._common import key_identifier
from ca.certificates import NameConstraints, PublicationURLs, build_certificate, build_name, new_serial
from ca.errors import CAError, IssuerInvalid, ProfileViolation
from ca.profiles import KeyType, SubjectAltNames, default_profiles
from tests.fixtures.pki import BASE_URL, PKI, SAMPLE_REQUESTS, build_pki, generate_key

UTC = datetime.UTC
NOW = datetime.datetime(2030, 6, 1, 8, 0, tzinfo=UTC)
END_ENTITY_PROFILES = tuple(SAMPLE_REQUESTS)


@pytest.fixture(scope="module")
def frozen_pki() -> PKI:
    """A PKI built at a fixed time: the builders depend on no clock but the one passed in."""
    return build_pki(KeyType.EC_P256, now=NOW)


def _extension(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension:
    return certificate.extensions.get_extension_for_oid(oid)


def test_new_serial_is_positive_large_and_random() -> None:
    serials = {new_serial() for _ in range(1000)}
    assert len(serials) == 1000
    assert all(1 << 64 <= s < 1 << 127 for s in serials)


@pytest.mark.parametrize("profile_name", END_ENTITY_PROFILES)
def test_end_entity_certificate_carries_the_profile_extensions(frozen_pki: PKI, profile_name: str) -> None:
    profile = frozen_pki.profiles.get(profile_name)
    issued = frozen_pki.issue(profile_name)
    certificate = issued.certificate
    sub_ca = frozen_pki.sub_ca.certificate

    certificate.verify_directly_issued_by(sub_ca)
    assert certificate.version is x509.Version.v3
    assert certificate.issuer == sub_ca.subject
    assert certificate.not_valid_before_utc == NOW - datetime.timedelta(minutes=5 if profile_name == "dr-probe" else 60)
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == profile.default_validity

    constraints = _extension(certificate, ExtensionOID.BASIC_CONSTRAINTS)
    assert constraints.critical and not constraints.value.ca
    usage = _extension(certificate, ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value.digital_signature
    assert usage.value.content_commitment == (profile_name in {"person-sign", "organisation-seal"})
    assert not usage.value.key_cert_sign and not usage.value.crl_sign

    eku = _extension(certificate, ExtensionOID.EXTENDED_KEY_USAGE)
    assert list(eku.value) == list(profile.extended_key_usage)
    assert eku.critical == (profile_name == "tsa")

    ski = _extension(certificate, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert ski.digest == key_identifier(issued.key.public_key())
    aki = _extension(certificate, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    assert aki.key_identifier == _extension(sub_ca, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    assert aki.authority_cert_issuer is None

    policies = _extension(certificate, ExtensionOID.CERTIFICATE_POLICIES).value
    assert [p.policy_identifier for p in policies] == list(profile.policies)

    access = {d.access_method: d.access_location.value
              for d in _extension(certificate, ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value}
    assert access[AuthorityInformationAccessOID.CA_ISSUERS] == f"{BASE_URL}/ca/sub.crt"
    if profile_name == "ocsp-responder":
        assert AuthorityInformationAccessOID.OCSP not in access
        assert _extension(certificate, ExtensionOID.OCSP_NO_CHECK).value == x509.OCSPNoCheck()
        with pytest.raises(x509.ExtensionNotFound):
            _extension(certificate, ExtensionOID.CRL_DISTRIBUTION_POINTS)
    else:
        assert access[AuthorityInformationAccessOID.OCSP] == f"{BASE_URL}/ocsp"
        points = _extension(certificate, ExtensionOID.CRL_DISTRIBUTION_POINTS).value
        assert [n.value for n in points[0].full_name] == [f"{BASE_URL}/crl/sub.crl"]
        with pytest.raises(x509.ExtensionNotFound):
            _extension(certificate, ExtensionOID.OCSP_NO_CHECK)


def test_server_certificate_names_and_rsa_key_usage(frozen_pki: PKI) -> None:
    issued = frozen_pki.issue("server-tls", key_type=KeyType.RSA_2048)
    san = _extension(issued.certificate, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.DNSName) == ["portal.example.gov.cn", "www.example.gov.cn"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.10")]
    usage = _extension(issued.certificate, ExtensionOID.KEY_USAGE).value
    assert usage.key_encipherment
    eku = _extension(issued.certificate, ExtensionOID.EXTENDED_KEY_USAGE).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_chinese_subject_is_encoded_as_utf8string_in_canonical_order(frozen_pki: PKI) -> None:
    issued = frozen_pki.issue("person-auth")
    parsed = asn1_x509.Certificate.load(issued.der)
    rdns = parsed["tbs_certificate"]["subject"].chosen
    pairs = [(rdn[0]["type"].native, rdn[0]["value"].chosen.__class__.__name__, rdn[0]["value"].native)
             for rdn in rdns]
    assert pairs == [
        ("country_name", "PrintableString", "CN"),
        ("organization_name", "UTF8String", "某某县人民政府"),
        ("organizational_unit_name", "UTF8String", "办公室"),
        ("common_name", "UTF8String", "张伟"),
    ]
    assert issued.certificate.subject.rfc4514_string() == "CN=张伟,OU=办公室,O=某某县人民政府,C=CN"


def test_build_name_orders_attributes_whatever_the_mapping_order() -> None:
    name = build_name({"CN": ("a",), "C": ("CN",), "OU": ("x", "y"), "O": ("o",)})
    assert name.rfc4514_string() == "CN=a,OU=y,OU=x,O=o,C=CN"


def test_root_is_self_signed_without_publication_urls(frozen_pki: PKI) -> None:
    root = frozen_pki.root.certificate
    root.verify_directly_issued_by(root)
    assert root.issuer == root.subject
    constraints = _extension(root, ExtensionOID.BASIC_CONSTRAINTS)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    usage = _extension(root, ExtensionOID.KEY_USAGE).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    ski = _extension(root, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    assert _extension(root, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier == ski
    for oid in (ExtensionOID.AUTHORITY_INFORMATION_ACCESS, ExtensionOID.CRL_DISTRIBUTION_POINTS,
                ExtensionOID.CERTIFICATE_POLICIES):
        with pytest.raises(x509.ExtensionNotFound):
            _extension(root, oid)


def test_sub_ca_has_path_length_zero_and_points_to_the_root(frozen_pki: PKI) -> None:
    sub_ca = frozen_pki.sub_ca.certificate
    sub_ca.verify_directly_issued_by(frozen_pki.root.certificate)
    assert _extension(sub_ca, ExtensionOID.BASIC_CONSTRAINTS).value.path_length == 0
    access = _extension(sub_ca, ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    assert {d.access_location.value for d in access} == {f"{BASE_URL}/ocsp", f"{BASE_URL}/ca/root.crt"}
    policies = _extension(sub_ca, ExtensionOID.CERTIFICATE_POLICIES).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.5.29.32.0"]


def _issue_sub_ca(pki: PKI, **changes) -> x509.Certificate:
    key = generate_key(KeyType.EC_P256)
    arguments = dict(
        issuer_cert=pki.root.certificate, issuer_key=pki.root.key,
        subject={"CN": "二级 CA", "O": "某某县人民政府"}, public_key=key.public_key(), serial=new_serial(),
        not_before=NOW, not_after=NOW + datetime.timedelta(days=365), urls=PublicationURLs(BASE_URL, "root"),
    )
    arguments.update(changes)
    return build_certificate(pki.profiles.get("sub-ca"), **arguments)


def test_sub_ca_name_constraints_are_critical_and_complete(frozen_pki: PKI) -> None:
    constraints = NameConstraints(
        permitted_dns=("example.gov.cn",),
        excluded_dns=("secret.example.gov.cn",),
        permitted_email=(".example.gov.cn", "example.gov.cn"),
        permitted_ip=("10.0.0.0/8",),
        permitted_directory_names=({"C": "CN", "O": "某某县人民政府"},),
    )
    certificate = _issue_sub_ca(frozen_pki, name_constraints=constraints, path_length=None)
    extension = _extension(certificate, ExtensionOID.NAME_CONSTRAINTS)
    assert extension.critical
    permitted = extension.value.permitted_subtrees
    assert x509.DNSName("example.gov.cn") in permitted
    assert x509.RFC822Name(".example.gov.cn") in permitted
    assert x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")) in permitted
    assert x509.DirectoryName(x509.Name.from_rfc4514_string("O=某某县人民政府,C=CN")) in permitted
    assert extension.value.excluded_subtrees == [x509.DNSName("secret.example.gov.cn")]


def test_builder_is_a_pure_function_of_its_inputs() -> None:
    key = ed25519.Ed25519PrivateKey.generate()  # Ed25519 signatures are deterministic
    arguments = dict(
        issuer_cert=None, issuer_key=key, subject={"CN": "根", "O": "恒信"}, public_key=key.public_key(),
        serial=12345678901234567890, not_before=NOW, not_after=NOW + datetime.timedelta(days=1),
    )
    profile = default_profiles().get("root-ca")
    first = build_certificate(profile, **arguments)
    second = build_certificate(profile, **arguments)
    assert first.public_bytes(serialization.Encoding.DER) == second.public_bytes(serialization.Encoding.DER)


class RemoteP256Key(ec.EllipticCurvePrivateKey):
    """Stands in for a key-store key: only sign(), public_key(), curve and key_size work."""

    def __init__(self, inner: ec.EllipticCurvePrivateKey) -> None:
        self._inner = inner
        self.signed = 0

    def sign(self, data, signature_algorithm):
        self.signed += 1
        return self._inner.sign(data, signature_algorithm)

    def public_key(self):
        return self._inner.public_key()

    @property
    def curve(self):
        return self._inner.curve

    @property
    def key_size(self):
        return self._inner.key_size

    def exchange(self, algorithm, peer_public_key):
        raise NotImplementedError

    def private_numbers(self):
        raise NotImplementedError

    def private_bytes(self, encoding, format, encryption_algorithm):
        raise NotImplementedError

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def test_issuer_key_may_be_a_key_store_key(frozen_pki: PKI) -> None:
    remote = RemoteP256Key(frozen_pki.sub_ca.key)
    leaf_key = generate_key(KeyType.EC_P256)
    subject, sans = SAMPLE_REQUESTS["person-auth"]
    certificate = build_certificate(
        frozen_pki.profiles.get("person-auth"), issuer_cert=frozen_pki.sub_ca.certificate, issuer_key=remote,
        subject=subject, public_key=leaf_key.public_key(), sans=sans, serial=new_serial(), not_before=NOW,
        not_after=NOW + datetime.timedelta(days=30), urls=frozen_pki.urls,
    )
    certificate.verify_directly_issued_by(frozen_pki.sub_ca.certificate)
    assert remote.signed == 1
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)


@pytest.mark.parametrize(
    ("issuer_key_type", "hash_name"),
    [(KeyType.EC_P256, "sha256"), (KeyType.EC_P384, "sha384"), (KeyType.RSA_2048, "sha256"),
     (KeyType.ED25519, None)],
)
def test_signature_hash_follows_the_issuer_key(pki_factory, issuer_key_type: KeyType, hash_name) -> None:
    certificate = pki_factory(issuer_key_type).issue("dr-probe").certificate
    algorithm = certificate.signature_hash_algorithm
    assert (algorithm.name if algorithm else None) == hash_name


# --- error paths -------------------------------------------------------------------------------------------


def _issue_leaf(pki: PKI, profile_name: str = "person-auth", **changes) -> x509.Certificate:
    subject, sans = SAMPLE_REQUESTS[profile_name]
    arguments = dict(
        issuer_cert=pki.sub_ca.certificate, issuer_key=pki.sub_ca.key, subject=subject,
        public_key=generate_key(KeyType.EC_P256).public_key(), sans=sans, serial=new_serial(),
        not_before=NOW, not_after=NOW + datetime.timedelta(days=30), urls=pki.urls,
    )
    arguments.update(changes)
    return build_certificate(pki.profiles.get(profile_name), **arguments)


@pytest.mark.parametrize(
    ("profile_name", "changes", "rule"),
    [
        ("server-tls", {"public_key": ed25519.Ed25519PrivateKey.generate().public_key()}, "key_type"),
        ("server-tls", {"sans": SubjectAltNames()}, "san_required"),
        ("person-auth", {"sans": SubjectAltNames()}, "san_required"),
        ("tsa", {"sans": SubjectAltNames(dns=("tsa.example.gov.cn",))}, "san_type_not_allowed"),
        ("person-auth", {"not_after": NOW + datetime.timedelta(days=1097)}, "validity"),
        ("dr-probe", {"not_after": NOW + datetime.timedelta(hours=2)}, "validity"),
        ("ocsp-responder", {"not_after": NOW + datetime.timedelta(days=32)}, "validity"),
        ("person-auth", {"not_after": NOW - datetime.timedelta(seconds=1)}, "validity"),
        ("person-auth", {"subject": {"CN": "张伟", "title": "处长"}}, "subject_attribute_unknown"),
        ("tsa", {"subject": {"CN": "时间戳"}}, "subject_attribute_required"),
        ("server-tls", {"subject": {"CN": "portal.example.gov.cn", "serialNumber": "1"}},
         "subject_attribute_not_allowed"),
        ("person-auth", {"path_length": 1}, "path_length"),
        ("person-auth", {"name_constraints": NameConstraints(permitted_dns=("example.gov.cn",))},
         "name_constraints"),
        ("person-auth", {"issuer_cert": None}, "issuer_required"),
    ],
)
def test_requests_outside_the_profile_are_refused(frozen_pki: PKI, profile_name: str, changes, rule: str) -> None:
    with pytest.raises(ProfileViolation) as info:
        _issue_leaf(frozen_pki, profile_name, **changes)
    assert info.value.rule == rule
    assert info.value.code == "ca.profile_violation"


def test_certificate_may_not_outlive_its_issuer(frozen_pki: PKI) -> None:
    sub_ca_end = frozen_pki.sub_ca.certificate.not_valid_after_utc
    with pytest.raises(ProfileViolation) as info:
        _issue_leaf(frozen_pki, "tsa", not_before=sub_ca_end - datetime.timedelta(days=10),
                    not_after=sub_ca_end + datetime.timedelta(days=1))
    assert info.value.rule == "issuer_validity"


def test_subject_key_may_not_be_the_issuer_key(frozen_pki: PKI) -> None:
    with pytest.raises(ProfileViolation) as info:
        _issue_leaf(frozen_pki, public_key=frozen_pki.sub_ca.key.public_key())
    assert info.value.rule == "key_reuse"


def test_sub_ca_with_path_length_zero_cannot_issue_a_ca(frozen_pki: PKI) -> None:
    with pytest.raises(ProfileViolation) as info:
        _issue_sub_ca(frozen_pki, issuer_cert=frozen_pki.sub_ca.certificate, issuer_key=frozen_pki.sub_ca.key,
                      urls=frozen_pki.urls)
    assert info.value.rule == "path_length"


def test_root_profile_refuses_an_issuer_and_a_foreign_key(frozen_pki: PKI) -> None:
    profile = frozen_pki.profiles.get("root-ca")
    key = generate_key(KeyType.EC_P384)
    arguments = dict(issuer_key=key, subject={"CN": "根", "O": "恒信"}, serial=1, not_before=NOW,
                     not_after=NOW + datetime.timedelta(days=1))
    with pytest.raises(ProfileViolation) as info:
        build_certificate(profile, issuer_cert=frozen_pki.root.certificate, public_key=key.public_key(), **arguments)
    assert info.value.rule == "self_signed"
    with pytest.raises(ProfileViolation) as info:
        build_certificate(profile, issuer_cert=None, public_key=generate_key(KeyType.EC_P384).public_key(),
                          **arguments)
    assert info.value.rule == "self_signed"


def test_issuer_key_must_match_the_issuer_certificate(frozen_pki: PKI) -> None:
    with pytest.raises(IssuerInvalid) as info:
        _issue_leaf(frozen_pki, issuer_key=frozen_pki.root.key)
    assert info.value.code == "ca.issuer_invalid"


def test_end_entity_certificate_cannot_issue(frozen_pki: PKI) -> None:
    with pytest.raises(IssuerInvalid):
        _issue_leaf(frozen_pki, issuer_cert=frozen_pki.ocsp_responder.certificate,
                    issuer_key=frozen_pki.ocsp_responder.key)


@pytest.mark.parametrize("base_url", ["https://pki.example.gov.cn", "ftp://pki.example.gov.cn", "pki.example"])
def test_publication_urls_must_be_plain_http(base_url: str) -> None:
    with pytest.raises(IssuerInvalid):
        PublicationURLs(base_url, "sub")


def test_publication_urls_have_the_documented_shape() -> None:
    urls = PublicationURLs("http://pki.example.gov.cn/", "county-1")
    assert (urls.ca_issuers, urls.ocsp, urls.crl) == (
        "http://pki.example.gov.cn/ca/county-1.crt", "http://pki.example.gov.cn/ocsp",
        "http://pki.example.gov.cn/crl/county-1.crl")


@pytest.mark.parametrize(
    "changes",
    [
        {"not_before": datetime.datetime(2030, 6, 1)},
        {"serial": 0},
        {"serial": 1 << 159},
        {"urls": None},
    ],
    ids=["naive-datetime", "serial-zero", "serial-too-large", "no-urls"],
)
def test_caller_bugs_raise_ca_error(frozen_pki: PKI, changes) -> None:
    with pytest.raises(CAError) as info:
        _issue_leaf(frozen_pki, **changes)
    assert type(info.value) is CAError
    assert info.value.code == "ca.error"


def test_empty_name_constraints_are_refused(frozen_pki: PKI) -> None:
    with pytest.raises(ProfileViolation) as info:
        _issue_sub_ca(frozen_pki, name_constraints=NameConstraints())
    assert info.value.rule == "name_constraints"

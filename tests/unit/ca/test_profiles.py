"""Profiles: shipped data, overrides, and the checks each profile makes."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ca.errors import ProfileConfigurationError, ProfileViolation, UnknownProfile, UnsupportedKey
from ca.profiles import (
    KeyType,
    SANType,
    SubjectAltNames,
    default_profiles,
    key_type_of,
    load_profiles,
    normalise_subject,
)
from tests.fixtures.pki import generate_key

UTC = datetime.UTC
T0 = datetime.datetime(2030, 1, 1, tzinfo=UTC)
EXPECTED_PROFILES = (
    "root-ca", "sub-ca", "person-auth", "person-sign", "organisation-seal", "server-tls", "tsa",
    "ocsp-responder", "dr-probe",
)


def test_shipped_profiles_are_all_present() -> None:
    assert default_profiles().names == EXPECTED_PROFILES


def test_unknown_profile_raises_with_its_code() -> None:
    with pytest.raises(UnknownProfile) as info:
        default_profiles().get("no-such-profile")
    assert info.value.code == "ca.unknown_profile"
    assert info.value.extra["profile"] == "no-such-profile"


def test_key_decisions_of_the_shipped_profiles() -> None:
    profiles = default_profiles()
    tsa = profiles.get("tsa")
    assert tsa.extended_key_usage == (ExtendedKeyUsageOID.TIME_STAMPING,)
    assert tsa.extended_key_usage_critical
    responder = profiles.get("ocsp-responder")
    assert responder.ocsp_no_check and responder.max_validity <= datetime.timedelta(days=31)
    assert profiles.get("dr-probe").max_validity <= datetime.timedelta(hours=1)
    assert profiles.get("server-tls").san_required_any == {SANType.DNS, SANType.IP}
    assert KeyType.ED25519 not in profiles.get("server-tls").key_types
    assert "nonRepudiation" in profiles.get("person-sign").key_usage
    assert profiles.get("sub-ca").path_length == 0
    for profile in profiles:
        for oid in profile.policies:
            # Example arc (RFC 5612 documentation PEN) or anyPolicy, until Hengxin has its own arc.
            assert oid.dotted_string.startswith("1.3.6.1.4.1.32473.") or oid.dotted_string == "2.5.29.32.0"


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [(KeyType.EC_P256, "ec-p256"), (KeyType.EC_P384, "ec-p384"), (KeyType.RSA_2048, "rsa-2048"),
     (KeyType.ED25519, "ed25519")],
)
def test_key_type_of_classifies_supported_keys(key_type: KeyType, expected: str) -> None:
    assert key_type_of(generate_key(key_type).public_key()) == expected


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: ec.generate_private_key(ec.SECP256K1()),
        lambda: rsa.generate_private_key(65537, 1024),
        lambda: rsa.generate_private_key(3, 2048),
        lambda: dsa.generate_private_key(2048),
        lambda: ed448.Ed448PrivateKey.generate(),
    ],
    ids=["p521", "secp256k1", "rsa1024", "rsa-e3", "dsa", "ed448"],
)
def test_unsupported_keys_are_refused(make_key) -> None:
    with pytest.raises(UnsupportedKey) as info:
        key_type_of(make_key().public_key())
    assert info.value.code == "ca.unsupported_key"


def test_forbidden_key_type_for_a_profile_is_a_key_type_violation() -> None:
    with pytest.raises(ProfileViolation) as info:
        default_profiles().get("server-tls").check_key(generate_key(KeyType.ED25519).public_key())
    assert info.value.rule == "key_type"
    assert info.value.code == "ca.profile_violation"
    assert info.value.extra == {"rule": "key_type"}


def test_validity_is_checked_against_the_profile_maximum() -> None:
    probe = default_profiles().get("dr-probe")
    probe.check_validity(T0, T0 + datetime.timedelta(minutes=60))
    with pytest.raises(ProfileViolation) as info:
        probe.check_validity(T0, T0 + datetime.timedelta(minutes=61))
    assert info.value.rule == "validity"
    with pytest.raises(ProfileViolation) as info:
        probe.check_validity(T0, T0)
    assert info.value.rule == "validity"


def test_subject_rules() -> None:
    profile = default_profiles().get("organisation-seal")
    assert profile.check_subject({"CN": "某某县人民政府电子印章", "O": "某某县人民政府"}) == {
        "CN": ("某某县人民政府电子印章",), "O": ("某某县人民政府",)}
    cases = {
        "subject_attribute_required": {"CN": "印章"},
        "subject_attribute_not_allowed": {"CN": "印章", "O": "政府", "emailAddress": "a@example.gov.cn"},
        "subject_attribute_unknown": {"CN": "印章", "O": "政府", "title": "x"},
        "subject_attribute_multiple": {"CN": ["a", "b"], "O": "政府"},
        "subject_attribute_empty": {"CN": "", "O": "政府"},
        "subject_attribute_length": {"CN": "长" * 65, "O": "政府"},
        "subject_attribute_invalid": {"CN": "印章", "O": "政府", "C": "cn"},
    }
    for rule, subject in cases.items():
        with pytest.raises(ProfileViolation) as info:
            profile.check_subject(subject)
        assert info.value.rule == rule, subject


def test_serial_number_attribute_must_be_printable() -> None:
    with pytest.raises(ProfileViolation) as info:
        normalise_subject({"serialNumber": "身份证"})
    assert info.value.rule == "subject_attribute_invalid"


def test_san_rules() -> None:
    tls = default_profiles().get("server-tls")
    subject = {"CN": ("portal.example.gov.cn",)}
    tls.check_sans(SubjectAltNames(dns=("portal.example.gov.cn",)), subject)
    tls.check_sans(SubjectAltNames(ip=("192.0.2.1",)), {"CN": ("192.0.2.1",)})
    cases = [
        ("san_required", SubjectAltNames(), subject),
        ("san_type_not_allowed", SubjectAltNames(dns=("portal.example.gov.cn",), email=("a@b.cn",)), subject),
        ("san_invalid", SubjectAltNames(dns=("*.example.gov.cn",)), {"CN": ("x",)}),
        ("san_invalid", SubjectAltNames(dns=("bad_label.example",)), {"CN": ("x",)}),
        ("san_invalid", SubjectAltNames(dns=("例子.中国",)), {"CN": ("x",)}),
        ("common_name_not_in_san", SubjectAltNames(dns=("other.example.gov.cn",)), subject),
    ]
    for rule, sans, subj in cases:
        with pytest.raises(ProfileViolation) as info:
            tls.check_sans(sans, subj)
        assert info.value.rule == rule, sans
    auth = default_profiles().get("person-auth")
    with pytest.raises(ProfileViolation) as info:
        auth.check_sans(SubjectAltNames(email=("not-an-address",)))
    assert info.value.rule == "san_invalid"


def test_invalid_ip_address_is_a_san_violation() -> None:
    with pytest.raises(ProfileViolation) as info:
        SubjectAltNames(ip=("300.1.1.1",))
    assert info.value.rule == "san_invalid"


def test_rsa_server_key_gets_key_encipherment_and_ec_does_not() -> None:
    tls = default_profiles().get("server-tls")
    assert tls.key_usage_extension(KeyType.RSA_2048).key_encipherment
    assert not tls.key_usage_extension(KeyType.EC_P256).key_encipherment
    assert tls.key_usage_extension(KeyType.EC_P256).digital_signature


def test_overrides_replace_fields_and_extends_defines_new_profiles() -> None:
    profiles = load_profiles({
        "server-tls": {"max_validity": "90d", "default_validity": "30d"},
        "server-tls-wildcard": {"extends": "server-tls", "wildcard_dns": True, "description": "wildcards"},
    })
    assert profiles.get("server-tls").max_validity == datetime.timedelta(days=90)
    wildcard = profiles.get("server-tls-wildcard")
    wildcard.check_sans(SubjectAltNames(dns=("*.example.gov.cn",)), {"CN": ("*.example.gov.cn",)})
    assert wildcard.max_validity == datetime.timedelta(days=90)  # extends the overridden profile
    # The shipped set is unchanged.
    assert default_profiles().get("server-tls").max_validity == datetime.timedelta(days=398)


@pytest.mark.parametrize(
    "overrides",
    [
        {"server-tls": {"no_such_field": 1}},
        {"server-tls": {"max_validity": "1y"}},
        {"server-tls": {"key_types": ["rsa-1024"]}},
        {"server-tls": {"key_usage": ["keyCertSign"]}},
        {"server-tls": {"default_validity": "999d"}},
        {"server-tls": {"extended_key_usage": ["not.an.oid"]}},
        {"root-ca": {"crl_url": True}},
        {"new": {"description": "incomplete"}},
        {"new": {"extends": "missing"}},
        {"sub-ca": {"extended_key_usage": ["serverAuth"]}},
        {"server-tls": {"wildcard_dns": "yes"}},
    ],
)
def test_invalid_overrides_are_configuration_errors(overrides) -> None:
    with pytest.raises(ProfileConfigurationError) as info:
        load_profiles(overrides)
    assert info.value.code == "ca.profile_configuration_invalid"


def test_a_profiles_document_must_have_the_profiles_key() -> None:
    with pytest.raises(ProfileConfigurationError):
        load_profiles(data={"profile": {}})

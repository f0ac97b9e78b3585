"""CRL building: entries, reasons, extensions, errors, and a 100,000-entry CRL."""

from __future__ import annotations

import datetime
import secrets
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from ca.crl import RevokedEntry, build_crl
from ca.errors import CAError, IssuerInvalid
from ca.profiles import KeyType
from tests.fixtures.pki import PKI, build_pki

UTC = datetime.UTC
NOW = datetime.datetime(2030, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def frozen_pki() -> PKI:
    return build_pki(KeyType.EC_P256, now=NOW)


def _build(pki: PKI, revoked, **changes) -> x509.CertificateRevocationList:
    arguments = dict(issuer_cert=pki.sub_ca.certificate, issuer_key=pki.sub_ca.key, revoked=revoked,
                     crl_number=7, this_update=NOW, next_update=NOW + datetime.timedelta(days=1))
    arguments.update(changes)
    return build_crl(**arguments)


def test_crl_carries_entries_reasons_and_invalidity_dates(frozen_pki: PKI) -> None:
    compromised = NOW - datetime.timedelta(days=3)
    crl = _build(frozen_pki, [
        RevokedEntry(1001, NOW - datetime.timedelta(hours=1), x509.ReasonFlags.key_compromise, compromised),
        (1002, NOW, None, None),
        (1003, NOW, x509.ReasonFlags.unspecified, None),
        RevokedEntry(1004, NOW, x509.ReasonFlags.certificate_hold),
        RevokedEntry(1005, NOW.astimezone(datetime.timezone(datetime.timedelta(hours=8))),
                     x509.ReasonFlags.superseded),
    ])
    assert crl.is_signature_valid(frozen_pki.sub_ca.key.public_key())
    assert crl.issuer == frozen_pki.sub_ca.certificate.subject
    assert crl.last_update_utc == NOW and crl.next_update_utc == NOW + datetime.timedelta(days=1)
    assert crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number == 7
    aki = crl.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    ski = frozen_pki.sub_ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest

    entries = {entry.serial_number: entry for entry in crl}
    assert sorted(entries) == [1001, 1002, 1003, 1004, 1005]
    first = entries[1001]
    assert first.revocation_date_utc == NOW - datetime.timedelta(hours=1)
    assert first.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    invalidity = first.extensions.get_extension_for_oid(CRLEntryExtensionOID.INVALIDITY_DATE).value
    assert invalidity.invalidity_date_utc == compromised
    # No reasonCode for an absent or unspecified reason (RFC 5280 section 5.3.1).
    assert len(entries[1002].extensions) == 0 and len(entries[1003].extensions) == 0
    assert entries[1004].extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.certificate_hold)
    assert entries[1005].revocation_date_utc == NOW


def test_empty_crl_is_valid(frozen_pki: PKI) -> None:
    crl = _build(frozen_pki, [])
    assert len(crl) == 0 and crl.is_signature_valid(frozen_pki.sub_ca.key.public_key())


@pytest.mark.parametrize("key_type", [KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519])
def test_crl_is_signed_for_every_issuer_key_type(pki_factory, key_type: KeyType) -> None:
    pki = pki_factory(key_type)
    crl = pki.crl([(5, pki.now, x509.ReasonFlags.key_compromise, None)])
    assert crl.is_signature_valid(pki.sub_ca.certificate.public_key())


@pytest.mark.parametrize(
    "changes",
    [
        {"this_update": datetime.datetime(2030, 6, 1)},
        {"next_update": NOW},
        {"crl_number": -1},
        {"crl_number": 1 << 159},
        {"revoked": [(0, NOW, None, None)]},
        {"revoked": [(1, datetime.datetime(2030, 1, 1), None, None)]},
        {"revoked": [(1, NOW, x509.ReasonFlags.remove_from_crl, None)]},
    ],
    ids=["naive-this-update", "next-not-after-this", "negative-number", "number-too-large", "serial-zero",
         "naive-revocation-time", "remove-from-crl"],
)
def test_caller_bugs_raise_ca_error(frozen_pki: PKI, changes) -> None:
    with pytest.raises(CAError) as info:
        _build(frozen_pki, changes.pop("revoked", []), **changes)
    assert info.value.code == "ca.error"


def test_crl_issuer_key_must_match(frozen_pki: PKI) -> None:
    with pytest.raises(IssuerInvalid):
        _build(frozen_pki, [], issuer_key=frozen_pki.root.key)


def test_end_entity_certificate_cannot_sign_a_crl(frozen_pki: PKI) -> None:
    responder = frozen_pki.ocsp_responder
    with pytest.raises(IssuerInvalid):
        _build(frozen_pki, [], issuer_cert=responder.certificate, issuer_key=responder.key)


def test_crl_with_100000_entries(frozen_pki: PKI) -> None:
    reasons = [None, x509.ReasonFlags.key_compromise, x509.ReasonFlags.superseded,
               x509.ReasonFlags.cessation_of_operation, x509.ReasonFlags.affiliation_changed]
    revoked = [
        RevokedEntry(secrets.randbits(127) | 1 << 100, NOW - datetime.timedelta(seconds=i), reasons[i % 5],
                     NOW - datetime.timedelta(days=1) if i % 10 == 1 else None)
        for i in range(100_000)
    ]
    started = time.perf_counter()
    crl = _build(frozen_pki, revoked)
    built = time.perf_counter()
    der = crl.public_bytes(serialization.Encoding.DER)
    print(f"\nCRL with 100,000 entries: built and signed in {built - started:.2f} s, {len(der) / 1e6:.1f} MB")
    assert len(crl) == 100_000
    assert crl.is_signature_valid(frozen_pki.sub_ca.key.public_key())
    sample = crl.get_revoked_certificate_by_serial_number(revoked[1].serial)
    assert sample is not None
    assert sample.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise

"""pyhanko-certvalidator (the path validator pyHanko uses for PDF signatures) accepts our chains and CRLs."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError

from ca.profiles import KeyType
from tests.fixtures.pki import PKI


def _context(pki: PKI, revoked: list[int]) -> ValidationContext:
    revoked_at = pki.now - datetime.timedelta(minutes=30)
    crl = pki.crl([(serial, revoked_at, x509.ReasonFlags.key_compromise, None) for serial in revoked])
    arl = pki.crl([], issuer=pki.root)
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(pki.root.der)],
        other_certs=[asn1_x509.Certificate.load(pki.sub_ca.der)],
        crls=[asn1_crl.CertificateList.load(c.public_bytes(serialization.Encoding.DER)) for c in (crl, arl)],
        revocation_mode="hard-fail",
        moment=pki.now,
    )


@pytest.mark.parametrize("issuer_key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519])
def test_signing_certificate_validates_with_crl_checking(pki_factory, issuer_key_type: KeyType) -> None:
    pki: PKI = pki_factory(issuer_key_type)
    good, revoked = pki.issue("person-sign"), pki.issue("person-sign")
    context = _context(pki, [revoked.serial])

    validator = CertificateValidator(asn1_x509.Certificate.load(good.der), validation_context=context)
    path = asyncio.run(validator.async_validate_usage({"digital_signature", "non_repudiation"}))
    assert len(path) == 3

    validator = CertificateValidator(asn1_x509.Certificate.load(revoked.der), validation_context=context)
    with pytest.raises(RevokedError):
        asyncio.run(validator.async_validate_usage({"digital_signature"}))

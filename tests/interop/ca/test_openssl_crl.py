"""``openssl crl`` verifies the CRLs the CA builds and shows their entries and reasons."""

from __future__ import annotations

import datetime
import re
import secrets
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca.crl import RevokedEntry
from ca.profiles import KeyType


@pytest.mark.parametrize("issuer_key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519])
def test_openssl_verifies_the_crl_and_shows_reasons(openssl, pki_factory, tmp_path: Path, issuer_key_type) -> None:
    pki = pki_factory(issuer_key_type)
    files = pki.write(tmp_path)
    now = pki.now
    crl = pki.crl([
        RevokedEntry(0x1001, now, x509.ReasonFlags.key_compromise, now - datetime.timedelta(days=2)),
        RevokedEntry(0x1002, now, x509.ReasonFlags.superseded),
        RevokedEntry(0x1003, now, x509.ReasonFlags.unspecified),
        RevokedEntry(0x1004, now, x509.ReasonFlags.certificate_hold),
    ], crl_number=42)
    path = tmp_path / "crl.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    result = openssl("crl", "-in", path, "-CAfile", files["sub_ca"], "-noout")
    assert result.returncode == 0
    assert "verify OK" in result.stdout + result.stderr

    text = openssl("crl", "-in", path, "-text", "-noout").stdout
    assert re.search(r"X509v3 CRL Number: \n\s+42", text)
    assert "X509v3 Authority Key Identifier" in text
    entries = dict(re.findall(r"Serial Number: (\w+)\n(.*?)(?=\n    Serial Number|\n    Signature Algorithm)",
                              text, re.S))
    assert set(entries) == {"1001", "1002", "1003", "1004"}
    assert "Key Compromise" in entries["1001"] and "Invalidity Date" in entries["1001"]
    assert "Superseded" in entries["1002"]
    assert "CRL entry extensions" not in entries["1003"]  # unspecified: no reasonCode
    assert "Certificate Hold" in entries["1004"]


def test_openssl_refuses_a_crl_checked_against_another_ca(openssl, pki_factory, tmp_path: Path) -> None:
    pki = pki_factory(KeyType.EC_P256)
    files = pki.write(tmp_path)
    path = tmp_path / "crl.pem"
    path.write_bytes(pki.crl([]).public_bytes(serialization.Encoding.PEM))
    result = openssl("crl", "-in", path, "-CAfile", files["root"], "-noout")
    assert "verify OK" not in result.stdout + result.stderr


def test_openssl_verifies_a_crl_of_100000_entries(openssl, pki, tmp_path: Path) -> None:
    files = pki.write(tmp_path)
    revoked = [(secrets.randbits(127) | 1 << 100, pki.now, x509.ReasonFlags.key_compromise if i % 2 else None, None)
               for i in range(100_000)]
    started = time.perf_counter()
    crl = pki.crl(revoked)
    print(f"\n100,000-entry CRL built in {time.perf_counter() - started:.2f} s")
    path = tmp_path / "big.der"
    path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    result = openssl("crl", "-inform", "DER", "-in", path, "-CAfile", files["sub_ca"], "-noout")
    assert "verify OK" in result.stdout + result.stderr

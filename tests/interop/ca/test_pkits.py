"""NIST PKITS (Public Key Interoperability Test Suite, 2011 edition) against ``ca.validation.validate_path``.

The data come from the ``cryptography-vectors`` package (``x509/PKITS_data``).
Every end-entity certificate's file name says whether its path must validate
(``Valid...``) or not (``Invalid...``) under PKITS' default settings (any
policy acceptable, no explicit policy, no policy-mapping inhibition), which
are our validator's settings.  For each test the validator gets the trust
anchor, the CA certificates whose subjects lie on the way from the
end-entity certificate to the anchor (and those named as indirect CRL
issuers), and their CRLs: what a relying party would have fetched.  Nothing
is fetched; the validation time is fixed at 2020-06-01, inside the validity of
the PKITS certificates (which expire in 2030).

Sections claimed (documented in docs/ca.md): 4.1 (tests 1 to 3), 4.2, 4.3,
4.4, 4.5, 4.6, 4.7, 4.13, 4.14, 4.15 and 4.16.  Not claimed: 4.1.4 to 4.1.6
(DSA with SHA-1 and 1024-bit keys, refused by our algorithm policy), 4.8 to
4.12 (policy processing with non-default initial policy settings).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509

from ca.validation import validate_path

MOMENT = dt.datetime(2020, 6, 1, tzinfo=dt.UTC)

SECTIONS: dict[str, tuple[str, int]] = {
    "4.1 signature verification": (r"ValidCertificatePath|InvalidCASignature|InvalidEESignature", 3),
    "4.2 validity periods": (r"(notBefore|notAfter)Date", 8),
    "4.3 verifying name chaining": (r"NameChaining|NameUIDs|RFC3280|UTF8String|Rollover", 11),
    "4.4 basic certificate revocation": (
        r"MissingCRL|RevokedCA|RevokedEE|BadCRLSignature|BadCRLIssuerName|WrongCRL|TwoCRLs|UnknownCRLEntryExtension"
        r"|UnknownCRLExtension|OldCRLnextUpdate|pre2000CRLnextUpdate|GeneralizedTimeCRLnextUpdate"
        r"|NegativeSerialNumber|LongSerialNumber|SeparateCertificateandCRLKeys",
        21,
    ),
    "4.5 self-issued certificates": (r"BasicSelfIssued", 8),
    "4.6 basic constraints": (r"MissingbasicConstraints|cAFalse|basicConstraintsNotCritical|pathLenConstraint", 17),
    "4.7 key usage": (r"keyUsage", 5),
    "4.13 name constraints": (r"nameConstraints", 38),
    "4.14 distribution points": (
        r"distributionPoint|NoissuingDistributionPoint|onlyContains|onlySomeReasons|IDPwithindirectCRL|cRLIssuer", 35
    ),
    "4.15 delta CRLs": (r"deltaCRL", 10),
    "4.16 private certificate extensions": (
        r"UnknownNotCriticalCertificateExtension|UnknownCriticalCertificateExtension", 2
    ),
}


def pkits_directory() -> Path:
    root = resources.files("cryptography_vectors").joinpath("x509", "PKITS_data")
    path = Path(str(root))
    if not (path / "certs").is_dir():
        pytest.fail("NIST PKITS data are missing: install the PyPI package 'cryptography-vectors' (make install)")
    return path


@cache
def pkits() -> tuple[dict[str, bytes], dict[str, bytes]]:
    directory = pkits_directory()
    certificates = {p.stem: p.read_bytes() for p in (directory / "certs").glob("*.crt")}
    crls = {p.stem: p.read_bytes() for p in (directory / "crls").glob("*.crl")}
    return certificates, crls


def end_entity_tests() -> Iterator[tuple[str, str]]:
    certificates, _ = pkits()
    for section, (pattern, expected) in SECTIONS.items():
        names = sorted(n for n in certificates if re.match(r"(Valid|Invalid)", n) and re.search(r"Test\d+EE$", n)
                       and re.search(pattern, n))
        assert len(names) == expected, (section, names)
        for name in names:
            yield section, name


@cache
def index() -> tuple[dict[str, asn1_x509.Certificate], dict[object, list[str]], dict[str, object]]:
    """CA certificates by file name, their file names by subject, and each CRL's issuer."""
    certificates, crls = pkits()
    parsed = {k: asn1_x509.Certificate.load(v) for k, v in certificates.items() if not re.search(r"Test\d+EE$", k)}
    by_subject: dict[object, list[str]] = {}
    for key, certificate in parsed.items():
        by_subject.setdefault(certificate.subject.hashable, []).append(key)
    crl_issuers = {key: asn1_crl.CertificateList.load(der).issuer.hashable for key, der in crls.items()}
    return parsed, by_subject, crl_issuers


def relevant_inputs(name: str) -> tuple[list[bytes], list[bytes]]:
    """The CA certificates and CRLs of every name on the way up from ``name`` (and of indirect CRL issuers)."""
    certificates, crls = pkits()
    parsed, by_subject, crl_issuers = index()
    leaf = asn1_x509.Certificate.load(certificates[name])
    frontier = [leaf.issuer.hashable]
    for point in leaf.crl_distribution_points_value or []:
        for general_name in point["crl_issuer"] or []:
            if general_name.name == "directory_name":
                frontier.append(general_name.chosen.hashable)
    names: set[object] = set()
    while frontier:
        subject = frontier.pop()
        if subject in names:
            continue
        names.add(subject)
        frontier += [parsed[key].issuer.hashable for key in by_subject.get(subject, [])]
    cas = [certificates[key] for subject in names for key in by_subject.get(subject, [])
           if key != "TrustAnchorRootCertificate"]
    revocation = [crls[key] for key, issuer in crl_issuers.items() if issuer in names]
    return cas, revocation


@pytest.mark.parametrize(("section", "name"), list(end_entity_tests()))
def test_pkits(section: str, name: str) -> None:
    certificates, _ = pkits()
    intermediates, crls = relevant_inputs(name)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    outcome = validate_path(
        certificates[name],
        trust_roots=[certificates["TrustAnchorRootCertificate"]],
        intermediates=intermediates,
        crls=crls,
        moment=MOMENT,
        revocation_mode="require",
    )
    expected = name.startswith("Valid")
    assert outcome.valid is expected, f"{section}: {name}: {outcome.code}: {outcome.reason}"
    if expected:
        assert outcome.path[-1].subject.rfc4514_string() == "CN=Trust Anchor,O=Test Certificates 2011,C=US"

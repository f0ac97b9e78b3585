"""poppler's pdfsig, with an NSS database trusting our root, accepts what we sign.

pdfsig exits 0 whether or not a signature is valid, so its output is parsed.
``-no-ocsp``: the test certificates name an OCSP responder on a host that
does not exist, and pdfsig (NSS) would otherwise try to reach it and report
"Unknown issue with Certificate"; pdfsig does not read the DSS.  pdfsig does
not check document timestamps ("Unimplemented Feature" / "not yet verified").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.nss import require_binary
from tests.interop.signing.conftest import run, tampered


def pdfsig(nss_db: str, path: Path) -> list[dict[str, str]]:
    """One dictionary per signature: field name, signature and certificate validation lines, type."""
    result = run(require_binary("pdfsig", "poppler-utils"), "-nssdir", nss_db, "-no-ocsp", str(path))
    assert result.returncode == 0, result.stderr
    signatures = []
    for block in re.split(r"^Signature #\d+:$", result.stdout, flags=re.M)[1:]:
        fields = dict(re.findall(r"^[ \t]+- ([^:\n]+): (.*)$", block, flags=re.M))
        signatures.append(fields)
    return signatures


@pytest.mark.parametrize("name", ["B-B", "B-T", "B-LT", "B-LTA", "visible"])
def test_pdfsig_reports_valid_and_trusted(nss_db: str, documents: dict[str, Path], name: str) -> None:
    signatures = pdfsig(nss_db, documents[name])
    signature = signatures[0]
    assert signature["Signature Validation"] == "Signature is Valid."
    assert signature["Certificate Validation"] == "Certificate is Trusted."
    assert signature["Signature Type"] == "ETSI.CAdES.detached"
    assert signature["Signing Hash Algorithm"] == "SHA-256"


def test_pdfsig_accepts_both_signatures_of_a_twice_signed_document(nss_db: str, documents: dict[str, Path]) -> None:
    signatures = [s for s in pdfsig(nss_db, documents["two-signatures"]) if s["Signature Type"] != "unknown"]
    assert len(signatures) == 2
    assert [s["Signer Certificate Common Name"] for s in signatures] == ["张伟", "某某县人民政府电子印章"]
    for signature in signatures:
        assert signature["Signature Validation"] == "Signature is Valid."
        assert signature["Certificate Validation"] == "Certificate is Trusted."


@pytest.mark.parametrize("name", ["B-B", "B-LTA", "two-signatures"])
def test_pdfsig_finds_a_changed_byte(nss_db: str, documents: dict[str, Path], name: str) -> None:
    signatures = pdfsig(nss_db, tampered(documents[name]))
    assert signatures and signatures[0]["Signature Validation"] != "Signature is Valid."

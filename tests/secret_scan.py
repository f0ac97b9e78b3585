"""Scan files for private keys and secrets in clear."""

from __future__ import annotations

import re
from pathlib import Path

from asn1crypto import keys as asn1_keys

PEM_PRIVATE = re.compile(rb"-----BEGIN (?:[A-Z0-9 ]+ )?PRIVATE KEY-----")


def _der_private_key_at(blob: bytes, offset: int) -> bool:
    """True when a PKCS#8 PrivateKeyInfo (or a bare EC/RSA private key) parses at ``offset``."""
    for spec in (asn1_keys.PrivateKeyInfo, asn1_keys.ECPrivateKey, asn1_keys.RSAPrivateKey):
        try:
            parsed = spec.load(blob[offset:], strict=False)
            parsed.native  # force a full parse
            if spec is asn1_keys.PrivateKeyInfo and parsed["private_key_algorithm"]["algorithm"].native:
                return True
            if spec is not asn1_keys.PrivateKeyInfo:
                return True
        except Exception:  # noqa: BLE001 - any parse failure means "not a key here"
            continue
    return False


def find_private_keys(root: Path) -> list[str]:
    """Paths (with offsets) under ``root`` holding a PEM or DER private-key structure."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        if PEM_PRIVATE.search(blob):
            found.append(f"{path}: PEM private key")
            continue
        # DER: a SEQUENCE header followed by INTEGER 0 (version) is where PKCS#8 and
        # EC/RSA private keys start; try each candidate.
        for match in re.finditer(rb"\x30(?:[\x00-\x7f]|\x81.|\x82..)\x02\x01[\x00\x01]", blob, re.DOTALL):
            if _der_private_key_at(blob, match.start()):
                found.append(f"{path}@{match.start()}: DER private key")
                break
    return found


def find_strings(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        for needle in needles:
            if needle and needle in blob:
                hits.append(f"{path}: contains a secret")
    return hits

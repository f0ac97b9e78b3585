"""openssl accepts our detached CMS signatures and the signature timestamp tokens inside them.

No ``-purpose any`` is needed: the person-sign certificate states the
emailProtection extended key usage that ``openssl cms -verify`` (S/MIME
purpose) checks, and the TSA certificate has exactly timeStamping, critical.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from asn1crypto import cms

from tests.fixtures.nss import require_binary
from tests.interop.signing.conftest import run


def openssl() -> str:
    return require_binary("openssl", "openssl")


@pytest.mark.parametrize("level", ["B-B", "B-T"])
def test_openssl_cms_verifies_the_detached_signature(
    documents: dict[str, Path], pki_files: dict[str, Path], level: str
) -> None:
    result = run(openssl(), "cms", "-verify", "-binary", "-inform", "DER", "-in", str(documents[f"cms-{level}"]),
                 "-content", str(documents["content"]), "-CAfile", str(pki_files["root"]), "-out", "/dev/null")
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr


def test_openssl_cms_refuses_changed_content(documents: dict[str, Path], pki_files: dict[str, Path],
                                             tmp_path: Path) -> None:
    changed = tmp_path / "content.txt"
    data = bytearray(documents["content"].read_bytes())
    data[10] ^= 0x01
    changed.write_bytes(bytes(data))
    result = run(openssl(), "cms", "-verify", "-binary", "-inform", "DER", "-in", str(documents["cms-B-T"]),
                 "-content", str(changed), "-CAfile", str(pki_files["root"]), "-out", "/dev/null")
    assert result.returncode != 0
    assert "Verification successful" not in result.stderr


def test_openssl_ts_verifies_the_signature_timestamp_token(
    documents: dict[str, Path], pki_files: dict[str, Path], tmp_path: Path
) -> None:
    signed_data = cms.ContentInfo.load(documents["cms-B-T"].read_bytes())["content"]
    signer_info = signed_data["signer_infos"][0]
    (token,) = [
        a["values"][0] for a in signer_info["unsigned_attrs"] if a["type"].native == "signature_time_stamp_token"
    ]
    token_file = tmp_path / "token.der"
    token_file.write_bytes(token.dump())
    digest = hashlib.sha256(signer_info["signature"].native).hexdigest()
    result = run(openssl(), "ts", "-verify", "-token_in", "-in", str(token_file), "-digest", digest,
                 "-CAfile", str(pki_files["root"]), "-untrusted", str(pki_files["sub_ca"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout

    wrong = hashlib.sha256(b"another signature").hexdigest()
    result = run(openssl(), "ts", "-verify", "-token_in", "-in", str(token_file), "-digest", wrong,
                 "-CAfile", str(pki_files["root"]), "-untrusted", str(pki_files["sub_ca"]))
    assert result.returncode != 0


def _pdf_signature_parts(path: Path, directory: Path) -> tuple[Path, Path]:
    """The first PDF signature's CMS object and the bytes it signs (its byte ranges), as files."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    data = path.read_bytes()
    embedded = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures[0]
    ranges = list(embedded.sig_object["/ByteRange"])
    signed = b"".join(data[start:start + length] for start, length in zip(ranges[::2], ranges[1::2], strict=True))
    content_info = cms.ContentInfo({"content_type": "signed_data", "content": embedded.signed_data})
    p7s, content = directory / f"{path.stem}.p7s", directory / f"{path.stem}.signed-bytes"
    p7s.write_bytes(content_info.dump())
    content.write_bytes(signed)
    return p7s, content


@pytest.mark.parametrize("name", ["B-T", "B-LTA"])
def test_openssl_cms_verifies_a_pdf_signature_and_finds_a_changed_byte(
    documents: dict[str, Path], pki_files: dict[str, Path], tmp_path: Path, name: str
) -> None:
    from tests.interop.signing.conftest import tampered

    for path, should_verify in ((documents[name], True), (tampered(documents[name]), False)):
        p7s, content = _pdf_signature_parts(path, tmp_path)
        result = run(openssl(), "cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7s),
                     "-content", str(content), "-CAfile", str(pki_files["root"]), "-out", "/dev/null")
        assert (result.returncode == 0) is should_verify, result.stderr
        assert ("Verification successful" in result.stderr) is should_verify

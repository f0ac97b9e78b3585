"""OCSP: responses to requests made by ``openssl ocsp`` verify with ``openssl ocsp`` and report the right status."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from ca.errors import OCSPMalformedRequest
from ca.ocsp import CertificateStatus, IssuerHashes, build_ocsp_error, build_ocsp_response, parse_ocsp_request
from ca.profiles import KeyType
from tests.fixtures.pki import PKI


def answer(pki: PKI, request: bytes, status: CertificateStatus, nonce: bytes | None = None) -> bytes:
    """What the responder service will do: parse, check the issuer, build a signed response."""
    info = parse_ocsp_request(request)
    assert IssuerHashes.from_certificate(pki.sub_ca.certificate).matches(info.cert_id)
    now = datetime.datetime.now(datetime.UTC)
    return build_ocsp_response(info.cert_id, status, pki.ocsp_signer(), produced_at=now,
                               this_update=now - datetime.timedelta(minutes=1),
                               next_update=now + datetime.timedelta(hours=4),
                               nonce=info.nonce if nonce is None else nonce)


def make_request(openssl, files, leaf: Path, out: Path, *extra: str) -> bytes:
    result = openssl("ocsp", *extra, "-issuer", files["sub_ca"], "-cert", leaf, "-reqout", out)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def check_status(openssl, files, leaf: Path, response: Path, *extra: str):
    """Ask openssl for the status of ``leaf`` in ``response`` (no nonce: the request is openssl's own).

    ``extra`` options come before ``-cert`` (openssl wants the digest first).
    """
    return openssl("ocsp", "-respin", response, "-issuer", files["sub_ca"], "-CAfile", files["root"],
                   "-no_nonce", *extra, "-cert", leaf)


def check_against_request(openssl, files, request: Path, response: Path):
    """Verify ``response`` against the saved ``request``, including its nonce."""
    return openssl("ocsp", "-respin", response, "-reqin", request, "-CAfile", files["root"],
                   "-verify_other", files["sub_ca"])


@pytest.mark.parametrize("issuer_key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519])
@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
def test_openssl_reports_good_and_revoked_with_reason(
    openssl, pki_factory, tmp_path: Path, issuer_key_type: KeyType, nonce: bool
) -> None:
    pki: PKI = pki_factory(issuer_key_type)
    files = pki.write(tmp_path)
    flags = () if nonce else ("-no_nonce",)
    revoked_at = (pki.now - datetime.timedelta(hours=2)).replace(microsecond=0)
    cases = {
        "good": (CertificateStatus.good(), ["good"]),
        "revoked": (CertificateStatus.revoked(revoked_at, x509.ReasonFlags.key_compromise),
                    ["revoked", "Reason: keyCompromise", f"Revocation Time: {revoked_at:%b %e %H:%M:%S %Y} GMT"]),
    }
    for name, (status, expected) in cases.items():
        leaf = tmp_path / f"{name}.pem"
        leaf.write_bytes(pki.issue("person-auth").pem)
        request = make_request(openssl, files, leaf, tmp_path / f"{name}.req", *flags)
        assert (parse_ocsp_request(request).nonce is not None) == nonce
        response = tmp_path / f"{name}.resp"
        response.write_bytes(answer(pki, request, status))

        result = check_status(openssl, files, leaf, response)
        assert result.returncode == 0, result.stderr
        assert "Response verify OK" in result.stderr
        assert result.stdout.startswith(f"{leaf}: {expected[0]}")
        for line in expected[1:]:
            assert line in result.stdout

        result = check_against_request(openssl, files, tmp_path / f"{name}.req", response)
        assert result.returncode == 0, result.stderr
        assert "Response verify OK" in result.stderr
        assert "Nonce Verify error" not in result.stderr
        assert ("WARNING: no nonce in response" in result.stderr) is False


def test_openssl_reports_unknown_and_sha256_cert_ids(openssl, pki: PKI, tmp_path: Path) -> None:
    files = pki.write(tmp_path)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pki.issue("server-tls").pem)
    request = make_request(openssl, files, leaf, tmp_path / "req.der", "-sha256")
    assert parse_ocsp_request(request).hash_algorithm == "sha256"
    response = tmp_path / "resp.der"
    response.write_bytes(answer(pki, request, CertificateStatus.unknown()))
    result = check_status(openssl, files, leaf, response, "-sha256")
    assert "Response verify OK" in result.stderr
    assert result.stdout.startswith(f"{leaf}: unknown")


def test_openssl_notices_a_wrong_nonce(openssl, pki: PKI, tmp_path: Path) -> None:
    """Negative control: openssl does compare the echoed nonce."""
    files = pki.write(tmp_path)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pki.issue("person-auth").pem)
    request = make_request(openssl, files, leaf, tmp_path / "req.der")
    response = tmp_path / "resp.der"
    response.write_bytes(answer(pki, request, CertificateStatus.good(), nonce=b"\x00" * 16))
    result = check_against_request(openssl, files, tmp_path / "req.der", response)
    assert "Nonce Verify error" in result.stderr


def test_openssl_shows_the_response_fields(openssl, pki: PKI, tmp_path: Path) -> None:
    files = pki.write(tmp_path)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pki.issue("person-sign").pem)
    request = make_request(openssl, files, leaf, tmp_path / "req.der")
    response = tmp_path / "resp.der"
    response.write_bytes(answer(pki, request, CertificateStatus.revoked(pki.now, x509.ReasonFlags.superseded)))
    text = openssl("ocsp", "-respin", response, "-resp_text", "-noverify").stdout
    responder = pki.ocsp_responder.certificate
    key_id = x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest.hex().upper()
    assert f"Responder Id: {key_id}" in text
    assert "Revocation Reason: superseded (0x4)" in text
    assert "OCSP Nonce" in text
    assert "Produced At:" in text and "Next Update:" in text


def test_nonce_longer_than_32_octets_gets_malformed_request(openssl, pki: PKI, tmp_path: Path) -> None:
    leaf = pki.issue("person-auth").certificate
    request = (ocsp.OCSPRequestBuilder().add_certificate(leaf, pki.sub_ca.certificate, hashes.SHA1())
               .add_extension(x509.OCSPNonce(b"\x5a" * 33), critical=False).build())
    with pytest.raises(OCSPMalformedRequest) as info:
        parse_ocsp_request(request.public_bytes(serialization.Encoding.DER))
    response = tmp_path / "error.der"
    response.write_bytes(build_ocsp_error(info.value.ocsp_status))
    result = openssl("ocsp", "-respin", response, "-noverify")
    assert result.stdout.strip() == "Responder Error: malformedrequest (1)"


@pytest.mark.parametrize(
    ("status", "text"),
    [(ocsp.OCSPResponseStatus.UNAUTHORIZED, "unauthorized (6)"),
     (ocsp.OCSPResponseStatus.INTERNAL_ERROR, "internalerror (2)"),
     (ocsp.OCSPResponseStatus.TRY_LATER, "trylater (3)")],
)
def test_openssl_reads_error_responses(openssl, tmp_path: Path, status, text: str) -> None:
    response = tmp_path / "error.der"
    response.write_bytes(build_ocsp_error(status))
    result = openssl("ocsp", "-respin", response, "-noverify")
    assert result.stdout.strip() == f"Responder Error: {text}"

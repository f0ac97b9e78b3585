"""openssl ts builds the requests, parses and verifies our responses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.timestamp.conftest import OpenSSL
from tests.unit.timestamp.tsa_pki import (
    OTHER_POLICY,
    POLICY,
    TSAPKI,
    UNKNOWN_POLICY,
    PKIFiles,
    build_tsa_pki,
    default_policy,
)
from timestamp.policy import Accuracy
from timestamp.tsa import TSAService

DATA = "Hengxin 恒信 test document\n".encode()


def _query(openssl: OpenSSL, *flags: str) -> bytes:
    (openssl.directory / "f").write_bytes(DATA)
    openssl.run("ts", "-query", "-data", "f", *flags, "-out", "req.tsq")
    return (openssl.directory / "req.tsq").read_bytes()


def _answer(openssl: OpenSSL, tsa: TSAService, request: bytes) -> Path:
    response = tsa.respond(request)
    path = openssl.directory / "resp.tsr"
    path.write_bytes(response.der)
    return path


def _verify(
    openssl: OpenSSL, files: PKIFiles, *source: str | Path, untrusted: Path | None = None, check: bool = True
) -> str:
    result = openssl.run(
        "ts", "-verify", *source, "-CAfile", files.root, "-untrusted", untrusted or files.chain, check=False
    )
    output = result.stdout + result.stderr
    if check:
        assert result.returncode == 0 and "Verification: OK" in output, output
    return output


def test_openssl_request_with_cert_verifies_against_the_query_and_the_data(
    openssl: OpenSSL, tsa_pki: TSAPKI, pki_files: PKIFiles
) -> None:
    response = _answer(openssl, tsa_pki.service(), _query(openssl, "-cert", "-sha256"))

    _verify(openssl, pki_files, "-in", response, "-queryfile", "req.tsq")
    _verify(openssl, pki_files, "-in", response, "-data", "f")


def test_changed_file_fails_openssl_verification(openssl: OpenSSL, tsa_pki: TSAPKI, pki_files: PKIFiles) -> None:
    response = _answer(openssl, tsa_pki.service(), _query(openssl, "-cert", "-sha256"))
    (openssl.directory / "f").write_bytes(DATA + b"one more line\n")

    output = _verify(openssl, pki_files, "-in", response, "-data", "f", check=False)

    assert "Verification: FAILED" in output
    assert "message imprint mismatch" in output


@pytest.mark.parametrize(
    "flags",
    [
        ["-cert", "-sha256", "-no_nonce"],
        ["-sha256"],
        ["-cert", "-sha384"],
        ["-cert", "-sha512"],
        ["-sha512", "-no_nonce"],
    ],
    ids=["no-nonce", "no-cert", "sha384", "sha512", "sha512-no-cert-no-nonce"],
)
def test_openssl_request_variants_verify(
    openssl: OpenSSL, tsa_pki: TSAPKI, pki_files: PKIFiles, flags: list[str]
) -> None:
    response = _answer(openssl, tsa_pki.service(), _query(openssl, *flags))
    # Without -cert the token carries no certificates: openssl finds the TSA certificate in -untrusted.
    untrusted = pki_files.chain if "-cert" in flags else pki_files.bundle

    _verify(openssl, pki_files, "-in", response, "-queryfile", "req.tsq", untrusted=untrusted)
    _verify(openssl, pki_files, "-in", response, "-data", "f", untrusted=untrusted)


@pytest.mark.parametrize("key_type", ["ec-p384", "rsa"])
def test_p384_and_rsa_tsa_keys_verify(openssl: OpenSSL, tmp_path: Path, key_type: str) -> None:
    tsa_pki = build_tsa_pki(key_type)
    files = tsa_pki.write(tmp_path / key_type)
    response = _answer(openssl, tsa_pki.service(), _query(openssl, "-cert", "-sha384"))

    _verify(openssl, files, "-in", response, "-queryfile", "req.tsq")


def test_bare_token_verifies_with_token_in(openssl: OpenSSL, tsa_pki: TSAPKI, pki_files: PKIFiles) -> None:
    response = tsa_pki.service().respond(_query(openssl, "-cert", "-sha256"))
    assert response.token is not None
    (openssl.directory / "token.der").write_bytes(response.token)

    _verify(openssl, pki_files, "-in", "token.der", "-token_in", "-data", "f")


def test_requested_policy_verifies(openssl: OpenSSL, tsa_pki: TSAPKI, pki_files: PKIFiles) -> None:
    response = _answer(openssl, tsa_pki.service(), _query(openssl, "-cert", "-sha256", "-tspolicy", OTHER_POLICY))
    _verify(openssl, pki_files, "-in", response, "-queryfile", "req.tsq")
    assert f"Policy OID: {OTHER_POLICY}" in openssl.run("ts", "-reply", "-in", response, "-text").stdout


def test_openssl_reply_text_shows_policy_accuracy_ordering_and_nonce(openssl: OpenSSL, tsa_pki: TSAPKI) -> None:
    tsa = tsa_pki.service()
    request = _query(openssl, "-cert", "-sha256")
    nonce = openssl.run("ts", "-query", "-in", "req.tsq", "-text").stdout.split("Nonce: ")[1].split()[0]
    response = tsa.respond(request)
    (openssl.directory / "resp.tsr").write_bytes(response.der)

    text = openssl.run("ts", "-reply", "-in", "resp.tsr", "-text").stdout

    assert "Status: Granted." in text
    assert f"Policy OID: {POLICY}" in text
    assert "Hash Algorithm: sha256" in text
    assert "Accuracy: 0x01 seconds, unspecified millis, unspecified micros" in text
    assert "Ordering: no" in text
    assert f"Nonce: {nonce}" in text
    assert int(nonce, 16) == response.record.nonce
    assert f"Serial number: 0x{response.record.serial_number:X}" in text
    assert "TSA: unspecified" in text


def test_sub_second_accuracy_and_tsa_name_are_shown_by_openssl(
    openssl: OpenSSL, tsa_pki: TSAPKI, pki_files: PKIFiles
) -> None:
    tsa = tsa_pki.service(
        default_policy(
            accuracy=Accuracy(seconds=0, millis=100, micros=0), include_tsa_name=True, include_signing_time=True
        )
    )
    response = _answer(openssl, tsa, _query(openssl, "-cert", "-sha256"))

    text = openssl.run("ts", "-reply", "-in", response, "-text").stdout
    assert "Accuracy: unspecified seconds, 0x64 millis, unspecified micros" in text
    assert "TSA: DirName:/C=CN/O=Hengxin Test/CN=Hengxin Test TSA" in text
    _verify(openssl, pki_files, "-in", response, "-queryfile", "req.tsq")


@pytest.mark.parametrize(
    ("flags", "failure"),
    [
        (["-sha1"], "unrecognized or unsupported algorithm identifier"),
        (["-md5"], "unrecognized or unsupported algorithm identifier"),
        (["-sm3"], "unrecognized or unsupported algorithm identifier"),
        (["-sha3-256"], "unrecognized or unsupported algorithm identifier"),
        (["-sha256", "-tspolicy", UNKNOWN_POLICY], "the requested TSA policy is not supported by the TSA"),
    ],
    ids=["sha1", "md5", "sm3-unknown-oid", "sha3-not-configured", "unaccepted-policy"],
)
def test_refused_openssl_requests_are_rejections_openssl_can_read(
    openssl: OpenSSL, tsa_pki: TSAPKI, flags: list[str], failure: str
) -> None:
    response = _answer(openssl, tsa_pki.service(), _query(openssl, *flags))

    text = openssl.run("ts", "-reply", "-in", response, "-text").stdout

    assert "Status: Rejected." in text
    assert f"Failure info: {failure}" in text


@pytest.mark.parametrize("make", [lambda q: b"\x00garbage", lambda q: q[: len(q) // 2]], ids=["garbage", "truncated"])
def test_malformed_requests_are_rejections_openssl_can_read(
    openssl: OpenSSL, tsa_pki: TSAPKI, make: Callable[[bytes], bytes]
) -> None:
    request = _query(openssl, "-sha256")
    response = _answer(openssl, tsa_pki.service(), make(request))

    text = openssl.run("ts", "-reply", "-in", response, "-text").stdout

    assert "Status: Rejected." in text
    assert "Failure info: the data submitted has the wrong format" in text


def test_unhealthy_clock_is_a_rejection_openssl_can_read(openssl: OpenSSL, tsa_pki: TSAPKI) -> None:
    response = _answer(openssl, tsa_pki.service(clock_check=lambda: False), _query(openssl, "-sha256"))
    text = openssl.run("ts", "-reply", "-in", response, "-text").stdout
    assert "Failure info: the TSA's time source is not available" in text

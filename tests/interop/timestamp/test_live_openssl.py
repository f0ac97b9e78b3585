"""OpenSSL talks to the running service: `openssl ts -query`, POST /tsa with curl, `openssl ts -verify`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.timestamp.tsa_platform import LiveTSA, live_tsa
from tests.interop.timestamp.conftest import OpenSSL

DATA = "恒信 time-stamped document\n".encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTSA]:
    yield from live_tsa(tmp_path_factory.mktemp("live-openssl"))


def _curl(url: str, query: Path, reply: Path) -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed: apt-get install curl")
    result = subprocess.run(
        [
            curl,
            "-s",
            "-o",
            str(reply),
            "-w",
            "%{http_code} %{content_type}",
            "-H",
            "Content-Type: application/timestamp-query",
            "--data-binary",
            f"@{query}",
            f"{url}/tsa",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_openssl_query_posted_with_curl_verifies_against_the_query_and_the_data(
    served: LiveTSA, openssl: OpenSSL
) -> None:
    directory = openssl.directory
    (directory / "document.txt").write_bytes(DATA)
    root, chain = served.write_pki(directory)
    openssl.run("ts", "-query", "-data", "document.txt", "-cert", "-sha256", "-out", "request.tsq")

    status = _curl(served.url, directory / "request.tsq", directory / "reply.tsr")

    assert status == "200 application/timestamp-reply"
    text = openssl.run("ts", "-reply", "-in", "reply.tsr", "-text").stdout
    assert "Status: Granted." in text
    assert "Policy OID: 1.3.6.1.4.1.32473.2.1" in text
    assert "Nonce: 0x" in text
    assert "Ordering: no" in text
    for source in (["-queryfile", "request.tsq"], ["-data", "document.txt"]):
        verified = openssl.run("ts", "-verify", "-in", "reply.tsr", *source, "-CAfile", root, "-untrusted", chain)
        assert "Verification: OK" in verified.stdout


def test_a_changed_file_fails_openssl_verification(served: LiveTSA, openssl: OpenSSL) -> None:
    directory = openssl.directory
    (directory / "document.txt").write_bytes(DATA)
    root, chain = served.write_pki(directory)
    openssl.run("ts", "-query", "-data", "document.txt", "-cert", "-sha512", "-out", "request.tsq")
    response = served.post_query((directory / "request.tsq").read_bytes())
    (directory / "reply.tsr").write_bytes(response.content)
    (directory / "changed.txt").write_bytes(DATA + b"!")

    good = openssl.run(
        "ts", "-verify", "-in", "reply.tsr", "-data", "document.txt", "-CAfile", root, "-untrusted", chain
    )
    bad = openssl.run(
        "ts", "-verify", "-in", "reply.tsr", "-data", "changed.txt", "-CAfile", root, "-untrusted", chain, check=False
    )

    assert "Verification: OK" in good.stdout
    assert bad.returncode != 0
    assert "Verification: FAILED" in bad.stdout
    assert "message imprint mismatch" in bad.stderr


def test_openssl_query_without_certificates_still_verifies_with_the_tsa_certificate_given(
    served: LiveTSA, openssl: OpenSSL
) -> None:
    directory = openssl.directory
    (directory / "document.txt").write_bytes(DATA)
    root, chain = served.write_pki(directory)
    openssl.run("ts", "-query", "-data", "document.txt", "-sha384", "-no_nonce", "-out", "request.tsq")
    response = served.post_query((directory / "request.tsq").read_bytes())
    (directory / "reply.tsr").write_bytes(response.content)

    text = openssl.run("ts", "-reply", "-in", "reply.tsr", "-text").stdout
    verified = openssl.run(
        "ts", "-verify", "-in", "reply.tsr", "-queryfile", "request.tsq", "-CAfile", root, "-untrusted", chain
    )

    assert "Nonce: unspecified" in text
    assert "Verification: OK" in verified.stdout
    token = openssl.run("ts", "-reply", "-in", "reply.tsr", "-token_out", "-out", "token.der")
    assert token.returncode == 0
    bare = openssl.run(
        "ts", "-verify", "-in", "token.der", "-token_in", "-data", "document.txt", "-CAfile", root, "-untrusted", chain
    )
    assert "Verification: OK" in bare.stdout


def test_openssl_reads_our_rejection_of_a_sha1_query(served: LiveTSA, openssl: OpenSSL) -> None:
    (openssl.directory / "document.txt").write_bytes(DATA)
    openssl.run("ts", "-query", "-data", "document.txt", "-sha1", "-out", "request.tsq")
    response = served.post_query((openssl.directory / "request.tsq").read_bytes())
    (openssl.directory / "reply.tsr").write_bytes(response.content)

    text = openssl.run("ts", "-reply", "-in", "reply.tsr", "-text").stdout

    assert response.status_code == 200
    assert "Status: Rejected." in text
    assert "unrecognized or unsupported algorithm" in text

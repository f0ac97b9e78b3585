"""Helpers for checking CA output with external verifiers: the openssl command line and pkilint."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pkilint.bin import lint_crl, lint_ocsp_response, lint_pkix_cert, lint_pkix_signer_signee_cert_chain

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def openssl() -> Runner:
    """``openssl(*args, cwd=...)`` runs the openssl command line and returns the completed process."""
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("the openssl command is missing: install the Debian package 'openssl' (make deps)")

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)

    return run


def _pkilint(main: Callable[[list[str]], int], *args: str | Path) -> list[tuple[str, str, str]]:
    """Run a pkilint command-line entry point in-process; return (severity, code, node path) of each finding."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        main(["lint", "-s", "INFO", "-f", "JSON", *map(str, args)])
    report = json.loads(output.getvalue())
    return [
        (finding["severity"], finding["code"], result["node_path"])
        for result in report["results"]
        for finding in result["finding_descriptions"]
    ]


def lint_certificate(path: Path) -> list[tuple[str, str, str]]:
    """pkilint's RFC 5280 certificate linter (``lint_pkix_cert``)."""
    return _pkilint(lint_pkix_cert.main, path)


def lint_chain(issuer: Path, subject: Path) -> list[tuple[str, str, str]]:
    """pkilint's issuer/subject linter (``lint_pkix_signer_signee_cert_chain``)."""
    return _pkilint(lint_pkix_signer_signee_cert_chain.main, issuer, subject)


def lint_revocation_list(path: Path, crl_type: str = "CRL") -> list[tuple[str, str, str]]:
    """pkilint's RFC 5280 CRL linter (``lint_crl -p PKIX``); ``crl_type`` is CRL or ARL."""
    return _pkilint(lint_crl.main, "-t", crl_type, "-p", "PKIX", path)


def lint_ocsp(path: Path) -> list[tuple[str, str, str]]:
    """pkilint's RFC 6960 OCSP response linter (``lint_ocsp_response``)."""
    return _pkilint(lint_ocsp_response.main, path)


# Findings we accept, by code, with the reason.  Anything else at WARNING or above fails the test.
ACCEPTED_FINDINGS: dict[str, str] = {}


def serious(findings: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Findings of severity WARNING, ERROR or FATAL that are not in ACCEPTED_FINDINGS."""
    return [f for f in findings if f[0] in {"WARNING", "ERROR", "FATAL"} and f[1] not in ACCEPTED_FINDINGS]

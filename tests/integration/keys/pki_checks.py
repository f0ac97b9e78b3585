"""Checks shared by the key custody and CA lifecycle tests: openssl verify, CRLs, OCSP through the service."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from ca.service import CAService, IssueRequest
from tests.integration.ca.conftest import make_csr


def pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)


def openssl(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *arguments], capture_output=True, text=True, timeout=60)


def assert_openssl_verifies(
    directory: Path, leaf: x509.Certificate, root: x509.Certificate, intermediates: Sequence[x509.Certificate],
    crls: Sequence[bytes] = (), expect_ok: bool = True,
) -> str:
    """``openssl verify -x509_strict`` of ``leaf`` against ``root``; with ``crls`` (PEM) also -crl_check_all."""
    arguments = ["verify", "-x509_strict", "-CAfile", write(directory, "root.pem", pem([root]))]
    if intermediates:
        arguments += ["-untrusted", write(directory, "intermediates.pem", pem(intermediates))]
    if crls:
        arguments += ["-crl_check_all", "-CRLfile", write(directory, "crls.pem", b"".join(crls))]
    arguments.append(write(directory, "leaf.pem", pem([leaf])))
    result = openssl(*arguments)
    output = result.stdout + result.stderr
    if expect_ok:
        assert result.returncode == 0 and ": OK" in result.stdout, output
    else:
        assert result.returncode != 0, output
    return output


def issue_server_certificate(service: CAService, name: str, ca: str | None = None) -> x509.Certificate:
    csr, _ = make_csr(name, dns=(name,))
    result = service.issue(IssueRequest(profile="server-tls", csr=csr, ca=ca), actor="test")
    certificate = result.certificate.certificate
    assert certificate is not None
    return certificate


def ocsp_status(service: CAService, certificate: x509.Certificate, issuer: x509.Certificate) -> str:
    """The certificate status the service's OCSP responder gives, after checking the response signature."""
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
    answer = service.ocsp_respond(request.public_bytes(serialization.Encoding.DER))
    response = ocsp.load_der_ocsp_response(answer.der)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, response.response_status
    responder = response.certificates[0]
    responder.verify_directly_issued_by(issuer)
    return response.certificate_status.name.lower()

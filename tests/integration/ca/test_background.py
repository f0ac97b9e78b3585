"""The jobs `hengxin serve` runs for the CA: the CRL publisher picks up revocations by itself."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from cryptography import x509

from tests.integration.ca.conftest import _live, make_csr


def test_the_served_crl_catches_up_with_revocations_without_being_forced(tmp_path: Path) -> None:
    settings = {"crl_min_interval_seconds": 1, "crl_check_interval_seconds": 0.2}
    for server in _live(tmp_path, ca=settings):
        csr, _ = make_csr("late.example.gov.cn", dns=("late.example.gov.cn",))
        with server.client() as client:
            issued = client.post("/api/v1/certificates", json={"profile": "server-tls", "csr": csr.decode()}).json()
            serial = int(issued["certificate"]["serial"], 16)
            before = x509.load_der_x509_crl(client.get("/crl/issuing.crl").content)
            assert client.post(f"/api/v1/certificates/{serial:x}/revoke", json={"reason": "superseded"}).is_success
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=server.url) as anonymous:
            while True:
                crl = x509.load_der_x509_crl(anonymous.get("/crl/issuing.crl").content)
                if crl.get_revoked_certificate_by_serial_number(serial) is not None:
                    break
                assert time.monotonic() < deadline, "the publisher did not publish the revocation"
                time.sleep(0.2)
            ready = anonymous.get("/readyz").json()
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert number > before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert ready["checks"]["ca"] == "ok"

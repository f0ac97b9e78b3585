"""A bounded soak: mixed traffic against a real ``hengxin serve``, zero errors, flat memory.

Three client threads loop over OCSP (GET and POST), RFC 3161 timestamps,
certificate issuance and revocation, and the audit list for
``HENGXIN_SOAK_SECONDS`` (default 30; ``make soak`` runs longer).  Every answer
must be the expected one.  The server's RSS is read from ``/proc`` every two
seconds: it must stay under 300 MB, and the largest value in the last third
of the run must be at most 1.3 times the largest in the first third plus
20 MB (growth that does not level off is a leak).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
from asn1crypto import algos, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.reliability.conftest import Instance, csr_pem

SECONDS = float(os.environ.get("HENGXIN_SOAK_SECONDS", "30"))
RSS_LIMIT = 300 * 1024 * 1024
SAMPLE_EVERY = 2.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def tsa_request(data: bytes) -> bytes:
    return tsp.TimeStampReq({
        "version": 1,
        "message_imprint": {"hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                            "hashed_message": hashlib.sha256(data).digest()},
        "nonce": int.from_bytes(os.urandom(8), "big"), "cert_req": True,
    }).dump()


class Traffic:
    def __init__(self, url: str, headers: dict[str, str], issuer: x509.Certificate, deadline: float) -> None:
        self.url = url
        self.headers = headers
        self.issuer = issuer
        self.deadline = deadline
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def expect(self, name: str, response: httpx.Response, status: int) -> httpx.Response:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            if response.status_code != status:
                self.errors.append(f"{name}: {response.status_code} {response.text[:300]}")
        return response

    def run(self, index: int) -> None:
        try:
            self._loop(index)
        except Exception as error:  # noqa: BLE001 - a transport error or a bad answer is an error of the soak
            with self.lock:
                self.errors.append(f"thread {index}: {type(error).__name__}: {error}")

    def _loop(self, index: int) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            n = 0
            while time.monotonic() < self.deadline:
                n += 1
                name = f"soak-{index}-{n}.example.gov.cn"
                issued = self.expect("issue", client.post("/api/v1/certificates", json={
                    "profile": "server-tls", "csr": csr_pem(name)}), 201)
                if issued.status_code != 201:
                    continue
                body = issued.json()["certificate"]
                certificate = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
                request = ocsp.OCSPRequestBuilder().add_certificate(certificate, self.issuer, hashes.SHA1()).build()
                der = request.public_bytes(serialization.Encoding.DER)
                posted = self.expect("ocsp-post", client.post(
                    "/ocsp", content=der, headers={"Content-Type": "application/ocsp-request"}), 200)
                encoded = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
                got = self.expect("ocsp-get", client.get(f"/ocsp/{encoded}"), 200)
                for answer in (posted, got):
                    parsed = ocsp.load_der_ocsp_response(answer.content)
                    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
                stamped = self.expect("tsa", client.post(
                    "/tsa", content=tsa_request(name.encode()),
                    headers={"Content-Type": "application/timestamp-query"}), 200)
                assert tsp.TimeStampResp.load(stamped.content)["status"]["status"].native == "granted"
                if n % 2 == 0:
                    serial = body["serial"].replace(":", "").lower()
                    self.expect("revoke", client.post(f"/api/v1/certificates/serial:{serial}/revoke",
                                                      json={"reason": "superseded"}), 200)
                self.expect("audit", client.get("/api/v1/audit", params={"limit": 50}), 200)


@pytest.mark.slow
@pytest.mark.soak
@pytest.mark.timeout(SECONDS + 240)
def test_mixed_traffic_has_no_errors_and_flat_memory(instance_factory) -> None:  # type: ignore[no-untyped-def]
    instance: Instance = instance_factory()
    node = instance.nodes[0]
    node.start()
    assert node.process is not None
    issuer = x509.load_der_x509_certificate(httpx.get(f"{node.url}/ca/issuing.crt", timeout=10).content)
    started = time.monotonic()
    traffic = Traffic(node.url, instance.headers, issuer, started + SECONDS)
    workers = [threading.Thread(target=traffic.run, args=(i,), daemon=True) for i in range(3)]
    for worker in workers:
        worker.start()
    samples: list[int] = [rss_bytes(node.process.pid)]
    while any(worker.is_alive() for worker in workers):
        time.sleep(SAMPLE_EVERY)
        samples.append(rss_bytes(node.process.pid))
    for worker in workers:
        worker.join(60)
    elapsed = time.monotonic() - started
    mb = [round(sample / 2**20, 1) for sample in samples]
    total = sum(traffic.counts.values())
    print(f"\nsoak: {elapsed:.0f} s, {total} requests ({traffic.counts}), RSS MB {mb}")
    assert not traffic.errors, traffic.errors[:10]
    assert traffic.counts.get("issue", 0) >= 3 and traffic.counts.get("tsa", 0) >= 3, traffic.counts
    assert max(samples) < RSS_LIMIT, mb
    third = max(1, len(samples) // 3)
    assert max(samples[-third:]) <= max(samples[:third]) * 1.3 + 20 * 2**20, mb

"""Service memory: resident set size of each Hengxin worker after start-up and at its peak under a mixed load.

A fresh instance (``[server] workers = 2``, SQLite as ``hengxin init`` ships it, default scrypt cost) with an
organisation seal.  The RSS of every worker process (``VmRSS``) is read after start-up, after one request of
each kind in both workers (the first use loads the signer, the TSA's dummy token ...), and every 0.2 s during
load: a short wrk run per endpoint, then one run that mixes them all:

* certificate issuance, ``POST /api/v1/certificates`` (profile server-tls, a P-256 CSR);
* OCSP, ``POST /ocsp`` for certificates issued before the load;
* timestamps, ``POST /tsa`` with distinct TimeStampReqs;
* PAdES B-T signatures, ``POST /api/v1/signatures/pdf`` of a one-page PDF with the seal.

The figure is the largest worker's RSS; the target is under 300 MB per worker.  ``VmHWM`` (the largest RSS a
process ever had) is reported as well: it includes start-up, where unlocking the file key store with scrypt
briefly takes 128 MiB.  The supervisor process (``hengxin serve`` itself, which serves no request) is reported
beside the workers.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import bench_pades
import harness

SCENARIO = "memory"
TARGET_MIB = 300.0
SAMPLE_SECONDS = 0.2


# -- processes ---------------------------------------------------------------------------------------------


def workers(instance: harness.Hengxin) -> list[int]:
    """The worker processes of ``hengxin serve`` (not multiprocessing's resource tracker)."""
    assert instance.process is not None
    found = []
    for pid in harness.process_tree(instance.process.pid):
        if pid == instance.process.pid:
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in command:
            found.append(pid)
    return sorted(found)


def high_water_mib(pid: int) -> float:
    """``VmHWM``: the largest RSS the process ever had, start-up included."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


class Sampler:
    """Reads every worker's RSS every 0.2 s in a thread; keeps the peak per phase and per worker."""

    def __init__(self, instance: harness.Hengxin) -> None:
        self.instance = instance
        self.phase = "idle"
        self.peaks: dict[str, dict[int, float]] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> dict[int, float]:
        readings = {pid: harness.rss_mib(pid) for pid in workers(self.instance)}
        peaks = self.peaks.setdefault(self.phase, {})
        for pid, rss in readings.items():
            peaks[pid] = max(peaks.get(pid, 0.0), rss)
        self.samples += 1
        return readings


# -- requests ----------------------------------------------------------------------------------------------


def csr_pem() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = "memory.bench.example.test"
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def ocsp_requests(issued: list[dict[str, Any]], issuer_pem: str) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    issuer = x509.load_pem_x509_certificate(issuer_pem.encode())
    requests = []
    for item in issued:
        certificate = x509.load_pem_x509_certificate(item["certificate"]["certificate_pem"].encode())
        requests.append(
            ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 - RFC 5019
            .build().public_bytes(serialization.Encoding.DER)
        )
    return requests


def timestamp_queries(count: int) -> list[bytes]:
    import hashlib

    from asn1crypto import tsp

    return [
        tsp.TimeStampReq({
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                "hashed_message": hashlib.sha256(secrets.token_bytes(32)).digest()},
            "nonce": secrets.randbits(63),
            "cert_req": True,
        }).dump()
        for _ in range(count)
    ]


def build_requests(instance: harness.Hengxin, token: str, count: int) -> dict[str, list[harness.Request]]:
    """The requests of each kind, after checking one answer of each (issuing the certificates OCSP asks about)."""
    admin = {**instance.headers, "Content-Type": "application/json"}
    issue_body = json.dumps({"profile": "server-tls", "csr": csr_pem()}).encode()
    with instance.client() as client:
        issued = []
        for _ in range(count):
            response = client.post("/api/v1/certificates", content=issue_body, headers=admin)
            if response.status_code != 201:
                raise SystemExit(f"issuing failed: {response.status_code} {response.text[:500]}")
            issued.append(response.json())
        issuer = issued[0]["certificate"]["ca"]
        issuer_pem = client.get(f"/ca/{issuer}.pem").text
        ocsp_bodies = ocsp_requests(issued, issuer_pem)
        answer = client.post("/ocsp", content=ocsp_bodies[0], headers={"Content-Type": "application/ocsp-request"})
        if answer.status_code != 200:
            raise SystemExit(f"OCSP failed: {answer.status_code}")
        queries = timestamp_queries(count)
        answer = client.post("/tsa", content=queries[0], headers={"Content-Type": "application/timestamp-query"})
        if answer.status_code != 200:
            raise SystemExit(f"TSA failed: {answer.status_code}")
        body, content_type = bench_pades.multipart({"seal": bench_pades.SEAL, "level": "B-T"}, "document.pdf",
                                                   bench_pades.one_page_pdf())
        signing = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        answer = client.post("/api/v1/signatures/pdf", content=body, headers=signing)
        if answer.status_code != 200:
            raise SystemExit(f"signing failed: {answer.status_code} {answer.text[:500]}")
    return {
        "issue": [harness.Request("POST", "/api/v1/certificates", issue_body, admin)],
        "ocsp": [harness.Request("POST", "/ocsp", der, {"Content-Type": "application/ocsp-request"})
                 for der in ocsp_bodies],
        "timestamp": [harness.Request("POST", "/tsa", der, {"Content-Type": "application/timestamp-query"})
                      for der in queries],
        "signature": [harness.Request("POST", "/api/v1/signatures/pdf", body, signing)],
    }


def mixed(kinds: dict[str, list[harness.Request]]) -> list[harness.Request]:
    """One request of each kind in turn (issue, OCSP, timestamp, signature, ...)."""
    longest = max(len(requests) for requests in kinds.values())
    return [requests[i % len(requests)] for i in range(longest) for requests in kinds.values()]


# -- main ----------------------------------------------------------------------------------------------------


def main() -> None:
    args = harness.arguments(__doc__.splitlines()[0], [
        ("--connections", {"type": int, "default": 8, "help": "wrk connections per run (default 8)"}),
    ])
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    phases: dict[str, Any] = {}
    with harness.workspace(SCENARIO) as work:
        instance = bench_pades.set_up(work)
        try:
            instance.start()
            time.sleep(1.0)  # let start-up finish in both workers (the health check answers from one)
            pids = workers(instance)
            if len(pids) != 2:
                raise SystemExit(f"expected two worker processes, found {pids}")
            started = {pid: harness.rss_mib(pid) for pid in pids}
            supervisor = harness.rss_mib(instance.process.pid) if instance.process else 0.0
            token = bench_pades.signer_token(instance)
            kinds = build_requests(instance, token, 8 if args.quick else 32)
            # Every kind once in both workers (one keep-alive client reaches only one): first uses load keys,
            # the signer, pyHanko's XMP support ...
            warm = harness.wrk(instance.url, mixed(kinds), connections=8, seconds=1, work=work)
            harness.check_clean(warm, "warm-up")
            warmed = {pid: harness.rss_mib(pid) for pid in workers(instance)}
            with Sampler(instance) as sampler:
                for name, requests in [*kinds.items(), ("mixed", mixed(kinds))]:
                    sampler.phase = name
                    result = harness.wrk(instance.url, requests, connections=args.connections, seconds=seconds,
                                         server_pids=instance.pids, work=work)
                    harness.check_clean(result, f"{name} load")
                    sampler.sample()
                    phases[name] = {"load": result.as_dict(), "peak_rss_mib": dict(sampler.peaks.get(name, {}))}
                    print(f"{name}: {result.rate}/s, peak RSS {max(phases[name]['peak_rss_mib'].values()):.1f} MiB",
                          file=sys.stderr, flush=True)
                samples = sampler.samples
            after = {pid: harness.rss_mib(pid) for pid in workers(instance)}
            final_workers = workers(instance)
            high_water = {pid: high_water_mib(pid) for pid in final_workers}
            supervisor_high_water = high_water_mib(instance.process.pid) if instance.process else 0.0
        finally:
            instance.stop()

    if final_workers != pids:
        raise SystemExit(f"the worker processes changed during the load ({pids} -> {final_workers}): a restart "
                         "would hide the peak")
    peak = {pid: max(phase["peak_rss_mib"].get(pid, 0.0) for phase in phases.values()) for pid in pids}
    largest_start = max(started.values())
    largest_peak = max(peak.values())
    generator = max(phase["load"]["generator_cpu_percent"] for phase in phases.values())
    rows = [
        harness.row("service memory: RSS per worker after start-up", largest_start, "MiB",
                    target=f"< {TARGET_MIB:g} MB per worker", met=largest_start < TARGET_MIB,
                    note=f"largest of 2 workers ({', '.join(f'{v:.0f}' for v in started.values())} MiB); "
                         f"supervisor {supervisor:.0f} MiB"),
        harness.row("service memory: peak RSS per worker under mixed load", largest_peak, "MiB",
                    target=f"< {TARGET_MIB:g} MB per worker", met=largest_peak < TARGET_MIB,
                    generator_cpu_percent=generator,
                    note=f"issue, OCSP, timestamps, PAdES signatures, then all mixed; {samples} samples at "
                         f"{SAMPLE_SECONDS:g} s; workers {', '.join(f'{v:.0f}' for v in peak.values())} MiB"),
        harness.row("service memory: peak RSS per worker since start (VmHWM)", max(high_water.values()), "MiB",
                    target=f"< {TARGET_MIB:g} MB per worker", met=max(high_water.values()) < TARGET_MIB,
                    note="includes start-up, where unlocking the file key store (scrypt, N = 2^17, r = 8) "
                         f"takes 128 MiB for a moment; supervisor {supervisor_high_water:.0f} MiB"),
    ]
    method = (
        f"Hengxin with [server] workers = 2 on SQLite (as `hengxin init` ships it), default scrypt cost, an "
        f"organisation seal. VmRSS of each worker read after start-up, after one request of each kind, and every "
        f"{SAMPLE_SECONDS:g} s during wrk runs of {seconds:g} s at {args.connections} connections: "
        f"POST /api/v1/certificates (server-tls, P-256 CSR), POST /ocsp, POST /tsa, POST /api/v1/signatures/pdf "
        f"(PAdES B-T, one-page PDF), then all four interleaved in one run. Every run had no error answers."
    )
    harness.save(SCENARIO, {
        "method": method,
        "rows": rows,
        "workers_after_startup_mib": list(started.values()),
        "workers_after_first_requests_mib": list(warmed.values()),
        "workers_after_load_mib": list(after.values()),
        "supervisor_mib": supervisor,
        "peak_per_worker_mib": list(peak.values()),
        "high_water_per_worker_mib": list(high_water.values()),
        "supervisor_high_water_mib": supervisor_high_water,
        "phases": {name: {"load": phase["load"], "peak_rss_mib": list(phase["peak_rss_mib"].values())}
                   for name, phase in phases.items()},
    }, quick=args.quick, no_save=args.no_save)


if __name__ == "__main__":
    main()

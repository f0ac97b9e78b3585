"""Revocation at 17,000 and 100,000 revoked certificates, and a CRL of 100,000 entries.

Ours: a Hengxin instance (SQLite, the default, fsync on; two workers) whose issuing CA holds N revoked
certificates.  They are issued and revoked through the CA service itself (``CAService.issue`` and
``CAService.revoke``, from 16 threads of one process, so concurrent calls share commits as they do under
load): real signed certificates, real rows and one audit record per issue and per revoke.  With the server
running, each figure is taken over HTTP at concurrency 1: the time of ``POST /api/v1/certificates/{id}/revoke``
for a few hundred certificates, and of ``POST /api/v1/cas/issuing/crl`` (build, sign and store the full CRL).

Peer: the OpenBao PKI engine (raft storage on disk) with the same number of revoked certificates, issued by
``/v1/pki/sign`` with a storing role and revoked by ``/v1/pki/revoke`` with ``auto_rebuild`` on.  Then
``/v1/pki/revoke`` is timed with ``auto_rebuild`` on and with OpenBao's default (the CRL is rebuilt by every
revocation: only a few, bounded in time), and ``/v1/pki/crl/rotate``.

Run ``.venv/bin/python bench/bench_revoke.py [--quick] [--no-save] [--counts N,M] [--openbao-counts N,M]``.
Populating Hengxin to 100,000 takes most of a full run (a few minutes: every certificate is signed, stored and
audited twice); OpenBao is populated to 17,000 only unless ``--openbao-counts`` says otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import multiprocessing
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from bench_issuance import make_csr, started_in_background  # noqa: E402

SCENARIO = "revoke"
THREADS = 16
# Revocations timed with OpenBao's default (a CRL rebuild in each) stop after this long.
REBUILDING_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much is timed at each count."""

    measured: int = 300  # revocations timed (auto_rebuild on for OpenBao)
    warm_up: int = 20  # untimed revocations first
    crl_builds: int = 3
    rebuilding: int = 10  # OpenBao revocations timed with its default of a CRL rebuild in each


QUICK = Sizes(measured=100, warm_up=10, crl_builds=2, rebuilding=5)


# -- timing over one keep-alive connection ----------------------------------------------------------------


class Client:
    """Requests one at a time over one keep-alive connection, each timed (http.client: little client work)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)
        self.headers = headers
        self.cpu_seconds = 0.0
        self.wall_seconds = 0.0

    def request(self, method: str, path: str, body: Any = None) -> tuple[float, bytes]:
        """(milliseconds, response body); refuses any answer but 2xx."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, **({"Content-Type": "application/json"} if data is not None else {})}
        cpu, start = time.process_time(), time.perf_counter()
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        content = response.read()
        elapsed = time.perf_counter() - start
        self.wall_seconds += elapsed
        self.cpu_seconds += time.process_time() - cpu
        if not 200 <= response.status < 300:
            raise SystemExit(f"{method} {path}: {response.status} {content[:500]!r}")
        return elapsed * 1000, content

    @property
    def cpu_percent(self) -> float:
        return round(100 * self.cpu_seconds / self.wall_seconds, 1) if self.wall_seconds else 0.0

    def close(self) -> None:
        self.connection.close()


def summary(times_ms: list[float]) -> dict[str, Any]:
    return {
        "count": len(times_ms),
        "median_ms": round(statistics.median(times_ms), 2),
        "p99_ms": harness.percentile(times_ms, 0.99),
        "max_ms": round(max(times_ms), 2),
        "first_ms": round(times_ms[0], 2),
        "last_ms": round(times_ms[-1], 2),
    }


# -- Hengxin: population through the CA service -------------------------------------------------------------


def _populate_process(config: str, revoke: int, keep: int, csr: str) -> list[int]:
    """In a fresh process: issue ``revoke + keep`` certificates through the CA service, revoke ``revoke``.

    Returns the ids of the ``keep`` certificates left issued.
    """
    from api.platform import open_platform
    from ca.service import CAService, IssueRequest
    from core.config import load_settings

    platform = open_platform(load_settings(config))
    try:
        service = platform.services["ca"]
        assert isinstance(service, CAService)
        request = IssueRequest(profile="server-tls", csr=csr.encode())

        def issue_and_revoke(_: int) -> None:
            certificate = service.issue(request, actor="bench").certificate
            service.revoke(certificate.id, actor="bench", reason="superseded")

        def issue(_: int) -> int:
            return service.issue(request, actor="bench").certificate.id

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(issue_and_revoke, range(revoke)))
            return list(pool.map(issue, range(keep)))
    finally:
        platform.close()


def populate_hengxin(instance: harness.Hengxin, revoke: int, keep: int, csr: str) -> tuple[list[int], float]:
    """Bring the instance to ``revoke`` more revoked certificates and ``keep`` issued ones; (ids, seconds).

    One process: SQLite takes one writer at a time, and a second writing process spends its time in the
    lock's back-off sleeps; the threads of one process share commits instead.
    """
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        ids = pool.apply(_populate_process, (str(instance.config), revoke, keep, csr))
    return ids, time.perf_counter() - started


def measure_hengxin(instance: harness.Hengxin, ids: list[int], revoked: int, sizes: Sizes) -> dict[str, Any]:
    """Revoke ``ids`` one at a time over HTTP (the first few untimed), then time CRL publication.

    ``revoked`` is how many certificates the CRL must list at the end.
    """
    client = Client(instance.url, instance.headers)
    try:
        # Publishing first leaves the background publisher nothing to do while the revocations are timed
        # (it waits [ca] crl_min_interval_seconds after a CRL before the next).
        client.request("POST", "/api/v1/cas/issuing/crl")
        for certificate_id in ids[:sizes.warm_up]:
            client.request("POST", f"/api/v1/certificates/{certificate_id}/revoke", {"reason": "superseded"})
        client.cpu_seconds = client.wall_seconds = 0.0
        times = [client.request("POST", f"/api/v1/certificates/{certificate_id}/revoke",
                                {"reason": "keyCompromise"})[0] for certificate_id in ids[sizes.warm_up:]]
        revoke_cpu = client.cpu_percent
        crl_times, entries = [], 0
        for _ in range(sizes.crl_builds):
            elapsed, content = client.request("POST", "/api/v1/cas/issuing/crl")
            crl_times.append(elapsed / 1000)
            entries = json.loads(content)["entries"]
    finally:
        client.close()
    crl = x509.load_der_x509_crl(httpx.get(f"{instance.url}/crl/issuing.crl", timeout=60).content)
    if entries != revoked or len(crl) != revoked:
        raise SystemExit(f"Hengxin CRL: {entries} entries reported, {len(crl)} in the CRL, {revoked} expected")
    return {"revoke": summary(times), "client_cpu_percent": revoke_cpu,
            "crl_seconds": [round(t, 3) for t in crl_times],
            "crl_median_seconds": round(statistics.median(crl_times), 3), "crl_entries": entries,
            "crl_bytes": len(crl.public_bytes(serialization.Encoding.DER))}


def run_hengxin(work: Path, counts: list[int], csr: str, sizes: Sizes) -> list[dict[str, Any]]:
    (work / "hengxin").mkdir()
    instance = harness.hengxin_instance(work / "hengxin", workers=2)
    results, revoked = [], 0
    instance.start()
    try:
        for count in counts:
            # The population runs beside the idle server (SQLite in WAL mode takes readers and writers from
            # several processes); the timed part runs with nothing else going on.
            to_revoke = max(0, count - revoked)
            ids, seconds = populate_hengxin(instance, to_revoke, sizes.warm_up + sizes.measured, csr)
            revoked += to_revoke + sizes.warm_up + sizes.measured
            figures = measure_hengxin(instance, ids, revoked, sizes)
            results.append({"revoked_before": count, "revoked_after": revoked,
                            "population_seconds": round(seconds, 1), **figures})
            print(f"Hengxin at {count}: populated in {seconds:.1f} s; revoke {figures['revoke']}; "
                  f"CRL {figures['crl_median_seconds']} s", file=sys.stderr)
    finally:
        instance.stop()
    return results


# -- OpenBao ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def thread_clients(bao: harness.OpenBaoRaft) -> Iterator[Callable[[], httpx.Client]]:
    """One httpx client per thread (a client is not shared between threads)."""
    local = threading.local()
    made: list[httpx.Client] = []

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=bao.url, headers=bao.headers, timeout=600)
            made.append(local.client)
        return local.client

    try:
        yield client
    finally:
        for c in made:
            c.close()


def openbao_call(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/v1/{path}", json=body)
    if response.status_code >= 300:
        raise SystemExit(f"OpenBao {path}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else {}


def populate_openbao(bao: harness.OpenBaoRaft, revoke: int, keep: int, csr: str) -> tuple[list[str], float]:
    started = time.perf_counter()
    with thread_clients(bao) as client:
        def issue(_: int) -> str:
            return str(openbao_call(client(), "pki/sign/bench", {"csr": csr, "common_name": "bench.example.test"})
                       ["data"]["serial_number"])

        def issue_and_revoke(_: int) -> None:
            openbao_call(client(), "pki/revoke", {"serial_number": issue(0)})

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(issue_and_revoke, range(revoke)))
            serials = list(pool.map(issue, range(keep)))
    return serials, time.perf_counter() - started


def openbao_crl_entries(bao: harness.OpenBaoRaft) -> int:
    return len(x509.load_der_x509_crl(httpx.get(f"{bao.url}/v1/pki/crl", timeout=120).content))


def measure_openbao(bao: harness.OpenBaoRaft, serials: list[str], revoked: int, sizes: Sizes) -> dict[str, Any]:
    """Revoke ``serials`` one at a time (auto_rebuild on, then a few with the default), time crl/rotate.

    ``revoked`` is how many certificates the CRL must list after the auto_rebuild revocations.
    """
    client = Client(bao.url, bao.headers)
    try:
        for serial in serials[:sizes.warm_up]:
            client.request("POST", "/v1/pki/revoke", {"serial_number": serial})
        client.cpu_seconds = client.wall_seconds = 0.0
        rest = serials[sizes.warm_up:]
        auto = [client.request("POST", "/v1/pki/revoke", {"serial_number": s})[0] for s in rest[:sizes.measured]]
        auto_cpu = client.cpu_percent
        rotate = [client.request("GET", "/v1/pki/crl/rotate")[0] / 1000 for _ in range(sizes.crl_builds)]
        entries = openbao_crl_entries(bao)
        # OpenBao's default: every revocation rebuilds the CRL before it answers.
        client.request("POST", "/v1/pki/config/crl", {"auto_rebuild": False})
        rebuilding: list[float] = []
        deadline = time.monotonic() + REBUILDING_SECONDS
        for serial in rest[sizes.measured:sizes.measured + sizes.rebuilding]:
            rebuilding.append(client.request("POST", "/v1/pki/revoke", {"serial_number": serial})[0])
            if time.monotonic() > deadline:
                break
        client.request("POST", "/v1/pki/config/crl", {"auto_rebuild": True})
    finally:
        client.close()
    if entries != revoked:
        raise SystemExit(f"OpenBao CRL: {entries} entries, {revoked} expected")
    return {"revoke_auto_rebuild": summary(auto), "client_cpu_percent": auto_cpu,
            "revoke_rebuild_each": summary(rebuilding), "rebuilding_revokes": len(rebuilding),
            "crl_rotate_seconds": [round(t, 3) for t in rotate],
            "crl_rotate_median_seconds": round(statistics.median(rotate), 3), "crl_entries": entries}


def run_openbao(bao: harness.OpenBaoRaft, counts: list[int], csr: str, sizes: Sizes) -> list[dict[str, Any]]:
    results = []
    harness.openbao_pki(bao, "pki")
    bao.request("POST", "pki/config/crl", {"auto_rebuild": True})
    revoked = 0
    for count in counts:
        to_revoke = max(0, count - revoked)
        serials, seconds = populate_openbao(bao, to_revoke, sizes.warm_up + sizes.measured + sizes.rebuilding,
                                            csr)
        revoked += to_revoke
        # The CRL holds what was revoked so far plus the warm-up and the timed revocations (auto_rebuild).
        figures = measure_openbao(bao, serials, revoked + sizes.warm_up + sizes.measured, sizes)
        revoked += sizes.warm_up + sizes.measured + figures["rebuilding_revokes"]
        results.append({"revoked_before": count, "revoked_after": revoked,
                        "population_seconds": round(seconds, 1), **figures})
        print(f"OpenBao at {count}: {figures['revoke_auto_rebuild']} rotate "
              f"{figures['crl_rotate_median_seconds']} s", file=sys.stderr)
    return results


# -- table ----------------------------------------------------------------------------------------------------


def rows(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    peer_by_count = {r["revoked_before"]: r for r in theirs}
    for mine in ours:
        count = mine["revoked_before"]
        peer = peer_by_count.get(count)
        median = mine["revoke"]["median_ms"]
        note = f"HTTP, c1, {mine['revoke']['count']} revocations; client CPU {mine['client_cpu_percent']} %"
        if median >= 2:
            note += (f"; missed by {median - 2:.2f} ms: each revocation waits for its own commit (an fsync, SQLite "
                     f"synchronous=FULL) with its audit record, behind the HTTP stack and the token check")
        table.append(harness.row(
            f"revoke at {count:,} revoked: median", median, "ms",
            peer="OpenBao PKI (raft, auto_rebuild)" if peer else "",
            peer_value=peer["revoke_auto_rebuild"]["median_ms"] if peer else None,
            target="median under 2 ms, flat", met=median < 2, note=note + "; lower is better"))
        table.append(harness.row(
            f"revoke at {count:,} revoked: p99", mine["revoke"]["p99_ms"], "ms",
            peer="OpenBao PKI (raft, auto_rebuild)" if peer else "",
            peer_value=peer["revoke_auto_rebuild"]["p99_ms"] if peer else None, note="lower is better"))
        if peer:
            table.append(harness.row(
                f"revoke at {count:,} revoked, peer rebuilding its CRL each time: median", median, "ms",
                peer="OpenBao PKI (raft, default)", peer_value=peer["revoke_rebuild_each"]["median_ms"],
                note=f"OpenBao: {peer['rebuilding_revokes']} revocations; lower is better"))
        table.append(harness.row(
            f"CRL of {mine['crl_entries']:,} entries: build, sign and store", mine["crl_median_seconds"], "s",
            peer="OpenBao PKI crl/rotate" if peer else "",
            peer_value=peer["crl_rotate_median_seconds"] if peer else None,
            target="under 3 s" if mine["crl_entries"] >= 100_000 else "",
            met=mine["crl_median_seconds"] < 3 if mine["crl_entries"] >= 100_000 else None,
            note="median of the builds; lower is better"))
    if len(ours) > 1:
        first, last = ours[0]["revoke"]["median_ms"], ours[-1]["revoke"]["median_ms"]
        table.append(harness.row(
            f"revoke median growth from {ours[0]['revoked_before']:,} to {ours[-1]['revoked_before']:,} revoked",
            round(last / first, 2), "x", target="flat", met=last / first < 1.5,
            note="ratio of the two medians (1.0 is flat)"))
    return table


def main() -> None:
    args = harness.arguments(__doc__.splitlines()[0], [
        ("--counts", {"default": None, "help": "revoked counts for Hengxin (default 17000,100000; quick 500,2000)"}),
        ("--openbao-counts", {"default": None,
                              "help": "revoked counts for OpenBao (default: 17000 only in a full run; populating "
                                      "OpenBao to 100,000 takes longer than the run is allowed)"}),
    ])
    counts = [500, 2000] if args.quick else [17_000, 100_000]
    if args.counts:
        counts = [int(c) for c in args.counts.split(",")]
    if args.openbao_counts:
        peer_counts = [int(c) for c in args.openbao_counts.split(",")]
    else:
        peer_counts = [500, 2000] if args.quick else [17_000]
    sizes = QUICK if args.quick else Sizes()
    csr = make_csr()
    started = time.perf_counter()
    with harness.workspace(SCENARIO) as work, started_in_background(harness.openbao_raft(work / "openbao")) as bao:
        # OpenBao starts while Hengxin initialises; it idles until its turn.
        ours = run_hengxin(work, counts, csr, sizes)
        theirs = run_openbao(bao.result(), peer_counts, csr, sizes)
    method = (
        f"Hengxin: SQLite (default, synchronous=FULL), `hengxin serve` with 2 workers. Revoked certificates are "
        f"issued (server-tls, P-256 CSR) and revoked through CAService.issue/revoke from {THREADS} threads of one "
        f"process beside the idle server (real rows, signed certificates and audit records). At each "
        f"count ({', '.join(f'{c:,}' for c in counts)}), with the server running: {sizes.warm_up} untimed "
        f"revocations, then {sizes.measured} POST /api/v1/certificates/{{id}}/revoke one at a time over one "
        f"keep-alive connection (Python http.client), then {sizes.crl_builds} POST /api/v1/cas/issuing/crl (full "
        f"CRL built, signed, stored). OpenBao: PKI engine on raft, root P-256, role storing; populated with "
        f"/v1/pki/sign and /v1/pki/revoke with auto_rebuild on, {THREADS} threads; at "
        f"{', '.join(f'{c:,}' for c in peer_counts)} revoked: {sizes.measured} timed revocations with auto_rebuild "
        f"on, {sizes.crl_builds} /v1/pki/crl/rotate, and up to {sizes.rebuilding} revocations (at most "
        f"{REBUILDING_SECONDS:g} s) with OpenBao's default of rebuilding the CRL on each."
    )
    harness.save(SCENARIO, {
        "method": method,
        "rows": rows(ours, theirs),
        "hengxin": ours,
        "openbao": theirs,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }, quick=args.quick, no_save=args.no_save)


if __name__ == "__main__":
    main()

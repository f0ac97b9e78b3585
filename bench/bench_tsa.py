"""TSA: RFC 3161 tokens per second from Hengxin's ``POST /tsa`` over HTTP, beside ``openssl ts -reply``.

Ours: a fresh instance (SQLite, fsync on, default scrypt cost, ``[server] workers = 2``) with its ECDSA P-256
TSA certificate from ``hengxin init``.  wrk sends distinct TimeStampReqs (SHA-256 imprint of random data, a
64-bit nonce, certReq true) as ``application/timestamp-query`` over a fixed number of connections; every token
is signed, self-verified, recorded and audited (committed) before its response.  The figure counts only
granted tokens: the script checks that the instance recorded exactly as many tokens as wrk received answers,
and ``openssl ts -verify`` checks sample tokens against the root CA fetched from the instance.

Peer: ``openssl ts -reply`` run once per request (the way OpenSSL offers a TSA) over the same queries, with
an ECDSA P-256 TSA certificate carrying the critical timeStamping extended key usage, made here with openssl;
one invocation at a time, and two at a time (one per core) for comparison.  Its tokens are not recorded
anywhere (openssl only bumps a serial file), so the comparison favours the peer.

    .venv/bin/python bench/bench_tsa.py [--quick] [--seconds N] [--no-save]
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import resource
import secrets
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import harness
from asn1crypto import tsp

from timestamp.asn1 import TimeStampResp  # asn1crypto's own makes the token mandatory, RFC 3161 does not

SCENARIO = "tsa"
CONNECTIONS = 64
TARGET_RATE = 2000.0
TARGET_RATIO = 15.0
POLICY = "1.3.6.1.4.1.32473.2.1"  # Hengxin's default policy (documentation arc), used by the peer too


def timestamp_query(nonce: int) -> bytes:
    """A DER TimeStampReq: SHA-256 of fresh random data, ``nonce``, certReq true."""
    return tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(os.urandom(64)).digest(),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    ).dump()


def granted(reply: bytes) -> bool:
    return bool(TimeStampResp.load(reply)["status"]["status"].native == "granted")


def openssl(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["openssl", *args], cwd=cwd, input=stdin, capture_output=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"openssl {' '.join(args)} failed: {result.stderr.decode(errors='replace')[-800:]}")
    return result


def verify_token(directory: Path, query: bytes, reply: bytes, root: Path, untrusted: Path, name: str) -> None:
    """``openssl ts -verify`` of one reply against its query; exits unless it says OK."""
    (directory / f"{name}.tsq").write_bytes(query)
    (directory / f"{name}.tsr").write_bytes(reply)
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-queryfile", f"{name}.tsq", "-in", f"{name}.tsr", "-CAfile", str(root),
         "-untrusted", str(untrusted)],
        cwd=directory, capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0 or "Verification: OK" not in result.stdout:
        raise SystemExit(f"openssl ts -verify refused {name}: {result.stdout} {result.stderr}")


def recorded_tokens(instance: harness.Hengxin) -> int:
    """Tokens in the instance's database (read-only, beside the running server)."""
    database = sqlite3.connect(f"file:{instance.data_dir / 'hengxin.db'}?mode=ro", uri=True, timeout=30)
    try:
        return int(database.execute("SELECT count(*) FROM timestamp_tokens").fetchone()[0])
    finally:
        database.close()


# -- ours ------------------------------------------------------------------------------------------------


def measure_hengxin(work: Path, queries: list[bytes], seconds: float) -> dict[str, Any]:
    (work / "hengxin").mkdir()
    instance = harness.hengxin_instance(work / "hengxin", workers=2)
    instance.start()
    try:
        pki = work / "hengxin-pki"
        pki.mkdir()
        with instance.client() as client:
            cas = client.get("/api/v1/cas").json()
            (pki / "root.pem").write_text("".join(ca["certificate_pem"] for ca in cas if ca["parent"] is None))
            (pki / "untrusted.pem").write_text("".join(ca["certificate_pem"] for ca in cas if ca["parent"]))
            headers = {"Content-Type": "application/timestamp-query"}
            samples = []
            for i in range(3):
                reply = client.post("/tsa", content=queries[i], headers=headers)
                if reply.status_code != 200 or not granted(reply.content):
                    raise SystemExit(f"/tsa did not grant a token: {reply.status_code} {reply.content[:200]!r}")
                samples.append(reply.content)
        for i, sample in enumerate(samples):
            verify_token(pki, queries[i], sample, pki / "root.pem", pki / "untrusted.pem", f"hengxin-{i}")

        requests = [harness.Request("POST", "/tsa", query, {"Content-Type": "application/timestamp-query"})
                    for query in queries]
        harness.wrk(instance.url, requests[:64], connections=CONNECTIONS, seconds=1, work=work)  # warm both workers
        before = recorded_tokens(instance)
        result = harness.wrk(instance.url, requests, connections=CONNECTIONS, seconds=seconds,
                             server_pids=instance.pids, work=work)
        harness.check_clean(result, "POST /tsa")
        # wrk counts answers, and a rejection is an HTTP 200 too: every answer must be a recorded token.
        recorded = recorded_tokens(instance) - before
        if recorded < result.requests:
            raise SystemExit(f"wrk received {result.requests} answers but only {recorded} tokens were recorded")
        # A token issued under load, checked by openssl as well.
        with instance.client() as client:
            last = client.post("/tsa", content=queries[-1], headers={"Content-Type": "application/timestamp-query"})
        verify_token(pki, queries[-1], last.content, pki / "root.pem", pki / "untrusted.pem", "hengxin-after")
        rss = [harness.rss_mib(pid) for pid in instance.pids]
        return {"wrk": result.as_dict(), "recorded_during_run": recorded, "server_rss_mib": rss,
                "verified_with_openssl": len(samples) + 1}
    finally:
        instance.stop()


# -- the peer --------------------------------------------------------------------------------------------

OPENSSL_CA = """[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = Bench TSA Root
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_tsa ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

OPENSSL_TS = """[ tsa ]
default_tsa = bench
[ bench ]
dir = {directory}
serial = $dir/serial{slot}
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl_tsa(directory: Path) -> None:
    """A P-256 root and a P-256 TSA certificate (timeStamping, critical) issued by it, and ts.cnf."""
    directory.mkdir()
    (directory / "ca.cnf").write_text(OPENSSL_CA)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=directory)
    openssl("req", "-new", "-x509", "-key", "ca.key", "-out", "ca.pem", "-days", "30", "-config", "ca.cnf",
            "-extensions", "v3_ca", cwd=directory)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "tsa.key", cwd=directory)
    openssl("req", "-new", "-key", "tsa.key", "-subj", "/CN=Bench OpenSSL TSA", "-out", "tsa.csr", cwd=directory)
    openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "2", "-days", "30",
            "-extfile", "ca.cnf", "-extensions", "v3_tsa", "-out", "tsa.pem", cwd=directory)
    # One serial file per concurrent invocation: openssl reads and rewrites it without locking.
    for slot in range(2):
        (directory / f"serial{slot}").write_text(f"{slot + 1:02X}00000000000001\n")
        (directory / f"ts{slot}.cnf").write_text(OPENSSL_TS.format(directory=directory, policy=POLICY, slot=slot))


def openssl_reply(directory: Path, index: int, slot: int = 0) -> None:
    openssl("ts", "-reply", "-queryfile", f"q{index}.tsq", "-signer", "tsa.pem", "-inkey", "tsa.key",
            "-config", f"ts{slot}.cnf", "-out", f"r{index}.tsr", cwd=directory)


def measure_openssl(work: Path, queries: list[bytes], count: int) -> dict[str, Any]:
    directory = work / "openssl"
    openssl_tsa(directory)
    for i in range(count):
        (directory / f"q{i}.tsq").write_bytes(queries[i % len(queries)])
    runs: dict[str, Any] = {}
    for parallel in (1, 2):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        if parallel == 1:
            for i in range(count):
                openssl_reply(directory, i)
        else:

            def share(slot: int, step: int = parallel) -> None:
                for i in range(slot, count, step):
                    openssl_reply(directory, i, slot)

            with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
                list(pool.map(share, range(parallel)))
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        refused = [i for i in range(count) if not granted((directory / f"r{i}.tsr").read_bytes())]
        if refused:
            raise SystemExit(f"openssl ts -reply refused {len(refused)} of {count} queries (first: {refused[0]})")
        for i in (0, count - 1):
            reply = (directory / f"r{i}.tsr").read_bytes()
            verify_token(directory, queries[i % len(queries)], reply, directory / "ca.pem", directory / "ca.pem",
                         f"openssl-{parallel}-{i}")
        runs[f"parallel_{parallel}"] = {
            "count": count,
            "seconds": round(elapsed, 2),
            "rate": round(count / elapsed, 1),
            "cpu_ms_per_token": round(1000 * cpu / count, 2),
        }
    return runs


def main() -> None:
    args = harness.arguments(__doc__.splitlines()[0])
    seconds = args.seconds or (3 if args.quick else 15)
    openssl_count = 30 if args.quick else 200
    harness.require("openssl", "the Debian package openssl")
    queries = [timestamp_query(secrets.randbits(63) | 1) for _ in range(100 if args.quick else 1000)]
    with harness.workspace(SCENARIO) as work:
        ours = measure_hengxin(work, queries, seconds)
        peer = measure_openssl(work, queries, openssl_count)
    result = ours["wrk"]
    rate = result["rate"]
    sequential, parallel = peer["parallel_1"]["rate"], peer["parallel_2"]["rate"]
    server_cpu_ms = (round(1000 * result["server_cpu_seconds"] / result["requests"], 3)
                     if result.get("server_cpu_seconds") and result["requests"] else None)
    latency = f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms at {CONNECTIONS} connections"
    rows = [
        harness.row(
            "TSA tokens/s, ECDSA P-256 (HTTP, recorded and audited)", rate, "tokens/s",
            peer="openssl ts -reply, one process per request", peer_value=sequential,
            target=f">= {TARGET_RATE:.0f}/s and >= {TARGET_RATIO:.0f}x openssl",
            met=rate >= TARGET_RATE and sequential > 0 and rate / sequential >= TARGET_RATIO,
            generator_cpu_percent=result["generator_cpu_percent"],
            note=f"{latency}; server CPU {server_cpu_ms} ms per token",
        ),
        harness.row(
            "TSA tokens/s beside openssl two processes at a time", rate, "tokens/s",
            peer="openssl ts -reply, two invocations at a time", peer_value=parallel,
            generator_cpu_percent=result["generator_cpu_percent"],
        ),
    ]
    method = (
        f"Hengxin: hengxin serve with [server] workers = 2, SQLite (synchronous=FULL), default scrypt cost, the "
        f"ECDSA P-256 TSA certificate from hengxin init; wrk (1 thread, {CONNECTIONS} connections, "
        f"{seconds:g} s after a 1 s warm-up) POSTs {len(queries)} distinct TimeStampReqs (SHA-256 imprint, "
        f"64-bit nonce, certReq) cycling; every answer was checked to be a recorded token (count in the database "
        f"equals wrk's answers) and 4 tokens passed openssl ts -verify against the instance's root. Peer: openssl "
        f"ts -reply with a P-256 TSA certificate (critical timeStamping EKU, ESSCertIDv2, SHA-256), one process "
        f"per query, {openssl_count} queries sequentially and again two at a time; its tokens are verified with "
        f"openssl ts -verify but not recorded anywhere."
    )
    harness.save(SCENARIO, {"method": method, "rows": rows, "hengxin": ours, "openssl": peer},
                 quick=args.quick, no_save=args.no_save)


if __name__ == "__main__":
    main()

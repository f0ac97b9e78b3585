"""Certificate issuance over REST: ECDSA P-256, stored and audited, at concurrency 1 and 16.

Ours: ``POST /api/v1/certificates`` (profile server-tls, one P-256 CSR posted again and again) on a Hengxin
instance with two workers on PostgreSQL (fsync on): every answer is a certificate whose row, status and audit
record were committed before the response.

Peers on the same machine in the same run:

* ``cfssl serve`` (Debian golang-cfssl) ``/api/v1/cfssl/sign`` with a P-256 CA made by ``cfssl gencert -initca``,
  without a certificate database, and with its certdb (SQLite as cfssl documents it; the schema is cfssl's first
  migration, which the Debian package does not ship).  The certdb variant stores the PEM; it has no audit log.
* the OpenBao PKI engine (raft storage on disk) ``/v1/pki/sign/bench``, with a role that stores every
  certificate (the default) and one with ``no_store``.

Run ``.venv/bin/python bench/bench_issuance.py [--quick] [--seconds N] [--no-save]``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

SCENARIO = "issuance"
NAME = "bench.example.test"
CONCURRENCY = (1, 16)
WARM_UP_SECONDS = 1
# cfssl's certdb schema (its first SQLite migration, certdb/sqlite/migrations): what the Debian build inserts into.
CFSSL_SCHEMA = """
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier)
);
"""


def make_csr() -> str:
    """One P-256 PKCS #10 request for NAME (CN repeated as a DNS subjectAltName)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def check_certificate(pem: str, what: str) -> None:
    """Refuse a peer (or us) answering something other than a P-256 certificate for NAME."""
    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SystemExit(f"{what}: the certificate does not carry the P-256 key of the CSR")
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if NAME not in names.get_values_for_type(x509.DNSName):
        raise SystemExit(f"{what}: the certificate does not name {NAME}")


def load(url: str, request: harness.Request, *, seconds: float, pids: list[int], work: Path,
         what: str) -> list[dict[str, Any]]:
    """wrk at each concurrency, after an untimed warm-up run; refuses a run with errors.

    The warm-up matters for Hengxin: each worker builds its routes' validators on its first request.
    """
    warm_up = harness.wrk(url, [request], connections=max(CONCURRENCY), seconds=WARM_UP_SECONDS, work=work)
    harness.check_clean(warm_up, f"{what} warm-up")
    runs = []
    for connections in CONCURRENCY:
        result = harness.wrk(url, [request], connections=connections, seconds=seconds, server_pids=pids, work=work)
        harness.check_clean(result, f"{what} c{connections}")
        runs.append(result.as_dict())
    return runs


# -- Hengxin --------------------------------------------------------------------------------------------------


def run_hengxin(work: Path, cluster: Any, csr: str, seconds: float) -> dict[str, Any]:
    database = cluster.create_database()
    (work / "hengxin").mkdir()
    instance = harness.hengxin_instance(work / "hengxin", database_url=cluster.url(database), workers=2)
    instance.start()
    try:
        body = json.dumps({"profile": "server-tls", "csr": csr}).encode()
        headers = {**instance.headers, "Content-Type": "application/json"}
        with instance.client() as client:
            response = client.post("/api/v1/certificates", content=body, headers=headers)
            if response.status_code != 201:
                raise SystemExit(f"Hengxin issue: {response.status_code} {response.text[:500]}")
            check_certificate(response.json()["certificate"]["certificate_pem"], "Hengxin")
        request = harness.Request("POST", "/api/v1/certificates", body, headers)
        runs = load(instance.url, request, seconds=seconds, pids=instance.pids, work=work, what="Hengxin issue")
        issued = int(cluster.psql("SELECT count(*) FROM ca_certificates WHERE status = 'issued'", database))
        audited = int(cluster.psql("SELECT count(*) FROM audit_records WHERE action = 'certificate.issue'",
                                   database))
        rss = sum(harness.rss_mib(pid) for pid in instance.pids)
    finally:
        instance.stop()
    return {"runs": runs, "stored_certificates": issued, "audit_records": audited, "rss_mib": round(rss, 1)}


# -- cfssl ----------------------------------------------------------------------------------------------------


def cfssl_ca(directory: Path) -> tuple[Path, Path]:
    """A P-256 CA made by cfssl itself."""
    directory.mkdir(parents=True, exist_ok=True)
    request = directory / "ca-csr.json"
    request.write_text(json.dumps({"CN": "Bench cfssl CA", "key": {"algo": "ecdsa", "size": 256},
                                   "names": [{"O": "Bench"}]}))
    result = subprocess.run([harness.require("cfssl", "the Debian package golang-cfssl"), "gencert", "-initca",
                             str(request)], capture_output=True, text=True, timeout=60, check=True)
    made = json.loads(result.stdout)
    certificate, key = directory / "ca.pem", directory / "ca-key.pem"
    certificate.write_text(made["cert"])
    key.write_text(made["key"])
    key.chmod(0o600)
    return certificate, key


def run_cfssl(work: Path, csr: str, seconds: float, *, certdb: bool) -> dict[str, Any]:
    directory = work / ("cfssl-certdb" if certdb else "cfssl")
    certificate, key = cfssl_ca(directory)
    config = directory / "config.json"
    config.write_text(json.dumps({"signing": {
        "default": {"expiry": "8760h", "usages": ["digital signature", "server auth"]},
        "profiles": {"server": {"expiry": "8760h", "usages": ["digital signature", "server auth"]}},
    }}))
    port = harness.free_port()
    command = [harness.require("cfssl", "the Debian package golang-cfssl"), "serve", "-address", "127.0.0.1",
               "-port", str(port), "-ca", str(certificate), "-ca-key", str(key), "-config", str(config),
               "-loglevel", "3"]
    database = directory / "certs.db"
    if certdb:
        with sqlite3.connect(database) as connection:
            connection.executescript(CFSSL_SCHEMA)
        (directory / "db.json").write_text(json.dumps({"driver": "sqlite3", "data_source": str(database)}))
        command += ["-db-config", str(directory / "db.json")]
    log = directory / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        harness.wait_http(f"{url}/api/v1/cfssl/health", process, log=log, timeout=30, ok=(200, 404))
        body = json.dumps({"certificate_request": csr, "hosts": [NAME], "profile": "server"}).encode()
        response = httpx.post(f"{url}/api/v1/cfssl/sign", content=body, timeout=30)
        answer = response.json()
        if response.status_code != 200 or not answer.get("success"):
            raise SystemExit(f"cfssl sign: {response.status_code} {response.text[:500]}")
        check_certificate(answer["result"]["certificate"], "cfssl")
        request = harness.Request("POST", "/api/v1/cfssl/sign", body, {"Content-Type": "application/json"})
        runs = load(url, request, seconds=seconds, pids=harness.process_tree(process.pid), work=work,
                    what=f"cfssl{' certdb' if certdb else ''} sign")
        rss = harness.rss_mib(process.pid)
    finally:
        harness.stop_process(process)
    stored = None
    if certdb:
        with sqlite3.connect(database) as connection:
            stored = int(connection.execute("SELECT count(*) FROM certificates").fetchone()[0])
        if not stored:
            raise SystemExit("cfssl certdb: no certificate was stored")
    return {"runs": runs, "stored_certificates": stored, "rss_mib": rss}


# -- OpenBao --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def started_in_background(manager: contextlib.AbstractContextManager[Any]) -> Iterator[Future[Any]]:
    """Enter ``manager`` (a server's start-up, mostly waiting) on another thread while the caller goes on.

    The future gives what the manager yields; the manager is exited at the end, after its start-up finished
    (even when the caller failed meanwhile), so nothing it started is left running.
    """
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(1) as starter:
        future = starter.submit(stack.enter_context, manager)
        try:
            yield future
        finally:
            future.exception()  # wait for the start-up: what it started is stopped by the stack's exit


def run_openbao(bao: harness.OpenBaoRaft, csr: str, seconds: float, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    paths = {"store": harness.openbao_pki(bao, "pki"),
             "no_store": harness.openbao_pki(bao, "pki-nostore", no_store=True)}
    body = json.dumps({"csr": csr, "common_name": NAME}).encode()
    headers = {**bao.headers, "Content-Type": "application/json"}
    for variant, path in paths.items():
        response = httpx.post(f"{bao.url}{path}", content=body, headers=headers, timeout=30)
        if response.status_code != 200:
            raise SystemExit(f"OpenBao sign: {response.status_code} {response.text[:500]}")
        check_certificate(response.json()["data"]["certificate"], "OpenBao")
        request = harness.Request("POST", path, body, headers)
        runs = load(bao.url, request, seconds=seconds, pids=harness.process_tree(bao.process.pid), work=work,
                    what=f"OpenBao sign ({variant})")
        results[variant] = {"runs": runs}
    stored = bao.request("LIST", "pki/certs")
    results["store"]["stored_certificates"] = len(stored["data"]["keys"]) if stored else 0
    results["rss_mib"] = harness.rss_mib(bao.process.pid)
    return results


# -- table ------------------------------------------------------------------------------------------------------


def rows(ours: dict[str, Any], peers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rate and latency rows at each concurrency; the target is cfssl's (no database) rate at c16."""
    table = []
    for index, connections in enumerate(CONCURRENCY):
        mine = ours["runs"][index]
        for label, peer in peers.items():
            theirs = peer["runs"][index]
            target = ""
            met = None
            note = f"peer's wrk CPU {theirs['generator_cpu_percent']} %"
            if connections == 16 and label == "cfssl serve (no database)":
                target = "at least cfssl's rate at concurrency 16"
                met = mine["rate"] >= theirs["rate"]
                if not met and mine["rate"]:
                    cpu_ms = 1000 * (mine.get("server_cpu_seconds") or 0) / max(1, mine["requests"])
                    note += (f"; missed by {theirs['rate'] / mine['rate']:.1f}x: Hengxin spent {cpu_ms:.1f} ms of "
                             f"server CPU per certificate (HTTP stack, CSR check, signing, two commits with the "
                             f"audit record) where cfssl signs without storing anything")
            table.append(harness.row(
                f"issue P-256, stored and audited, c{connections}: rate", mine["rate"], "certs/s", peer=label,
                peer_value=theirs["rate"], target=target, met=met,
                generator_cpu_percent=mine["generator_cpu_percent"], note=note))
        for quantile in ("p50_ms", "p99_ms"):
            for label, peer in peers.items():
                table.append(harness.row(
                    f"issue P-256, c{connections}: {quantile.removesuffix('_ms')} latency", mine[quantile], "ms",
                    peer=label, peer_value=peer["runs"][index][quantile],
                    generator_cpu_percent=mine["generator_cpu_percent"], note="lower is better"))
    return table


def main() -> None:
    args = harness.arguments(__doc__.splitlines()[0])
    seconds = args.seconds or (2 if args.quick else 10)
    csr = make_csr()
    with harness.workspace(SCENARIO) as work, started_in_background(harness.openbao_raft(work / "openbao")) as bao:
        # OpenBao starts (raft election, unseal) while Hengxin initialises; it idles until its turn.
        with harness.postgres() as cluster:
            ours = run_hengxin(work, cluster, csr, seconds)
        cfssl_plain = run_cfssl(work, csr, seconds, certdb=False)
        cfssl_db = run_cfssl(work, csr, seconds, certdb=True)
        openbao = run_openbao(bao.result(), csr, seconds, work)
    peers = {
        "cfssl serve (no database)": cfssl_plain,
        "cfssl serve (certdb, SQLite)": cfssl_db,
        "OpenBao PKI (raft, stored)": openbao["store"],
        "OpenBao PKI (raft, no_store)": openbao["no_store"],
    }
    method = (
        f"wrk (1 thread) posts one P-256 CSR repeatedly for {seconds:g} s at each of c1 and c16. "
        "Hengxin: POST /api/v1/certificates (profile server-tls, issuing CA P-256), `hengxin serve` with 2 workers "
        "on PostgreSQL (fsync on); each certificate is reserved, signed and committed with its audit record "
        "before the answer. cfssl: `cfssl serve` /api/v1/cfssl/sign with a P-256 CA from `cfssl gencert -initca`, "
        "without a database, and with its certdb on SQLite (default durability; no audit log). OpenBao: PKI engine "
        "on raft storage, /v1/pki/sign/bench with a root P-256 key, role storing (default) and role no_store. "
        "Everything on 127.0.0.1 on one machine."
    )
    harness.save(SCENARIO, {
        "method": method,
        "rows": rows(ours, peers),
        "hengxin": ours,
        "cfssl": {"no_database": cfssl_plain, "certdb_sqlite": cfssl_db},
        "openbao": openbao,
    }, quick=args.quick, no_save=args.no_save)


if __name__ == "__main__":
    main()

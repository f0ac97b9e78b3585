"""OCSP: responses per second for 10,000 issued certificates, beside ``openssl ocsp -index`` and OpenBao.

Ours: a fresh instance (SQLite, fsync on, default scrypt cost, ``[server] workers = 2``).  Certificates are
issued through the API (``server-tls`` from one CSR) and every 20th revoked; the responder URL is read
from the certificates' AIA.  wrk sends DER OCSP requests built with ``cryptography`` (SHA-1 CertIDs, one per
certificate, cycling over all of them): POST without a nonce (answers are pre-signed and cached, each still
checked against the database), POST with an RFC 8954 nonce (signed per request) and GET (RFC 5019).

Peers, on the same serial numbers:

* ``openssl ocsp -index index.txt -port P -rsigner -rkey -CA`` with a P-256 CA and delegated responder made
  here with openssl and an index.txt listing the same serials (the same ones revoked).  Its responder serves
  one connection at a time, so wrk uses one connection per serving process.  wrk opens and closes a probe
  connection before it starts, which parks one responder process for good (the hang checked below); each
  openssl run therefore gets a fresh responder started with one process more than it serves with: ``-multi 2``
  for one serving process and ``-multi 3`` for two.
* OpenBao on raft storage (``harness.openbao_raft``): a PKI mount with an EC P-256 root signing the same CSR,
  every 20th of its certificates revoked, OCSP at ``/v1/pki/ocsp``.

Every run's answers are spot-checked first (status successful, good or revoked as expected, the nonce
echoed).  Last, each responder gets a client that connects and closes without sending and one that connects
and stays silent, and a normal request from a third client must be answered within 2 s.

    .venv/bin/python bench/bench_ocsp.py [--quick] [--seconds N] [--no-save]
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

SCENARIO = "ocsp"
CONNECTIONS = 32
TARGET_RATIO = 2.0
HANG_LIMIT = 2.0
REVOKED_EVERY = 20  # every 20th certificate is revoked (keyCompromise)
# Answers without a nonce are pre-signed and cached in each worker process, and a request reaches either
# worker, so before the timed run a full run sends every request this many times over (at most for
# WARM_UP_CAP_SECONDS): the timed run then measures the cached path, the nonce run measures signing.
WARM_UP_PASSES = 3
WARM_UP_CAP_SECONDS = 40
OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}
MODES = ("post", "post_nonce", "get")
MODE_NAMES = {"post": "POST without nonce", "post_nonce": "POST with nonce", "get": "GET"}


# -- requests --------------------------------------------------------------------------------------------


def make_csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocsp-bench.example")])
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name)
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("ocsp-bench.example")]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


@contextlib.contextmanager
def timed_pool(workers: int) -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        yield pool


def ocsp_requests(issuer: x509.Certificate, serials: list[int]) -> dict[str, list[bytes]]:
    """DER requests (SHA-1 CertID, as openssl and most clients send) for each serial: plain and with a nonce."""
    name_hash = hashlib.sha1(issuer.subject.public_bytes()).digest()  # noqa: S324 - the CertID hash
    key = issuer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key_hash = hashlib.sha1(  # noqa: S324
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ).digest()
    plain, with_nonce = [], []
    for serial in serials:
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1())
        plain.append(builder.build().public_bytes(serialization.Encoding.DER))
        nonce = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        with_nonce.append(nonce.build().public_bytes(serialization.Encoding.DER))
    return {"post": plain, "post_nonce": with_nonce, "get": plain}


def wrk_requests(path: str, requests: dict[str, list[bytes]]) -> dict[str, list[harness.Request]]:
    base = path.rstrip("/")
    return {
        "post": [harness.Request("POST", path, der, OCSP_REQUEST) for der in requests["post"]],
        "post_nonce": [harness.Request("POST", path, der, OCSP_REQUEST) for der in requests["post_nonce"]],
        "get": [harness.Request("GET", f"{base}/{urllib.parse.quote(base64.b64encode(der).decode(), safe='')}")
                for der in requests["get"]],
    }


def check_answers(url: str, path: str, requests: dict[str, list[bytes]], serials: list[int], revoked: set[int],
                  responder: str, *, require_nonce: bool = True, sample: int = 12) -> bool:
    """Spot-check each kind of request: successful, the right serial and status, the nonce echoed.

    Returns whether the nonce was echoed (checked to be, with ``require_nonce``).
    """
    echoed_every = True
    revoked_indices = [i for i, serial in enumerate(serials) if serial in revoked][:3]
    picks = sorted(set(range(min(sample, len(serials)))) | set(revoked_indices))
    base = path.rstrip("/")
    with httpx.Client(base_url=url, timeout=30, headers={"Connection": "close"}) as client:
        for mode in MODES:
            for i in picks:
                der = requests[mode][i]
                if mode == "get":
                    answer = client.get(f"{base}/{urllib.parse.quote(base64.b64encode(der).decode(), safe='')}")
                else:
                    answer = client.post(path, content=der, headers=OCSP_REQUEST)
                if answer.status_code != 200:
                    raise SystemExit(f"{responder} {mode}: HTTP {answer.status_code}")
                response = ocsp.load_der_ocsp_response(answer.content)
                if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
                    raise SystemExit(f"{responder} {mode}: {response.response_status.name} for serial {serials[i]:x}")
                expected = (ocsp.OCSPCertStatus.REVOKED if serials[i] in revoked else ocsp.OCSPCertStatus.GOOD)
                if response.serial_number != serials[i] or response.certificate_status is not expected:
                    raise SystemExit(f"{responder} {mode}: serial {serials[i]:x} answered "
                                     f"{response.certificate_status.name}, expected {expected.name}")
                if mode == "post_nonce":
                    sent = ocsp.load_der_ocsp_request(der).extensions.get_extension_for_class(x509.OCSPNonce)
                    try:
                        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
                    except x509.ExtensionNotFound:
                        echoed = None
                    if echoed != sent.value.nonce:
                        if require_nonce:
                            raise SystemExit(f"{responder}: the nonce was not echoed")
                        echoed_every = False
    return echoed_every


def warm_up_responder(url: str, requests: list[harness.Request], mode: str, work: Path) -> dict[str, Any]:
    """Warm ``url`` up: 1 s, or for POST without a nonce WARM_UP_PASSES passes over ``requests``.

    wrk starts its request list from the top each run, so each 5 s chunk starts where the last one stopped.
    """
    if mode != "post":
        harness.wrk(url, requests[:200], connections=CONNECTIONS, seconds=1, work=work)
        return {"requests": None}
    sent, spent = 0, 0.0
    while sent < WARM_UP_PASSES * len(requests) and spent < WARM_UP_CAP_SECONDS:
        start = sent % len(requests)
        result = harness.wrk(url, requests[start:] + requests[:start], connections=CONNECTIONS, seconds=5, work=work)
        sent, spent = sent + result.requests, spent + result.seconds
    return {"requests": sent, "passes": round(sent / len(requests), 1), "seconds": round(spent, 1)}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load(url: str, requests: list[harness.Request], *, connections: int, seconds: float, pids: list[int],
         what: str, work: Path) -> dict[str, Any]:
    result = harness.wrk(url, requests, connections=connections, seconds=seconds, server_pids=pids, work=work)
    harness.check_clean(result, what)
    return result.as_dict()


def no_hang(host: str, port: int, path: str, body: bytes) -> dict[str, Any]:
    """Open a connection that closes without sending and one that stays silent; time a third client's request."""
    closed = socket.create_connection((host, port), timeout=5)
    closed.close()
    silent = socket.create_connection((host, port), timeout=5)
    time.sleep(0.2)
    started = time.perf_counter()
    try:
        answer = httpx.post(f"http://{host}:{port}{path}", content=body, headers=OCSP_REQUEST, timeout=HANG_LIMIT)
        answered = answer.status_code == 200 and bool(answer.content)
    except httpx.TimeoutException:
        answered = False
    elapsed = time.perf_counter() - started
    silent.close()
    return {"answered_within_limit": answered, "seconds": round(elapsed, 3), "limit_seconds": HANG_LIMIT}


# -- Hengxin ---------------------------------------------------------------------------------------------


def issue_hengxin(instance: harness.Hengxin, count: int, csr: bytes) -> tuple[list[int], x509.Certificate, str]:
    """Issue ``count`` certificates through the API; (serials, issuing CA, OCSP URL from the AIA)."""
    body = {"profile": "server-tls", "csr": csr.decode()}
    local = threading.local()

    def issue(_: int) -> dict[str, Any]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = instance.client()
        answer = client.post("/api/v1/certificates", json=body)
        if answer.status_code != 201:
            raise SystemExit(f"issuing failed: {answer.status_code} {answer.text[:300]}")
        return answer.json()  # type: ignore[no-any-return]

    with timed_pool(8) as pool:
        issued = list(pool.map(issue, range(count)))
    serials = [int(item["certificate"]["serial"], 16) for item in issued]
    issuer = x509.load_pem_x509_certificate(issued[0]["chain_pem"].encode())
    with instance.client() as client:
        certificate = x509.load_pem_x509_certificate(
            client.get(f"/api/v1/certificates/{issued[0]['certificate']['serial']}").json()["certificate_pem"].encode()
        )
    aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    url = next(d.access_location.value for d in aia if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP)
    return serials, issuer, url


def revoke_hengxin(instance: harness.Hengxin, serials: list[int]) -> None:
    local = threading.local()

    def revoke(serial: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = instance.client()
        answer = client.post(f"/api/v1/certificates/{serial:x}/revoke", json={"reason": "keyCompromise"})
        if answer.status_code != 200:
            raise SystemExit(f"revoking failed: {answer.status_code} {answer.text[:300]}")

    with timed_pool(8) as pool:
        list(pool.map(revoke, serials))


def measure_hengxin(work: Path, count: int, csr: bytes, seconds: float, *, warm_up: bool) -> dict[str, Any]:
    (work / "hengxin").mkdir()
    instance = harness.hengxin_instance(work / "hengxin", workers=2)
    instance.start()
    try:
        progress(f"Hengxin started; issuing {count} certificates")
        started = time.perf_counter()
        serials, issuer, url = issue_hengxin(instance, count, csr)
        issue_seconds = time.perf_counter() - started
        revoked = set(serials[::REVOKED_EVERY])
        revoke_hengxin(instance, sorted(revoked))
        parsed = urllib.parse.urlsplit(url)
        path = parsed.path or "/"
        requests = ocsp_requests(issuer, serials)
        check_answers(instance.url, path, requests, serials, revoked, "Hengxin")
        lists = wrk_requests(path, requests)
        progress(f"issued in {issue_seconds:.0f} s; load runs")
        runs: dict[str, Any] = {}
        warm: dict[str, Any] = {}
        for mode in MODES:
            if warm_up:
                warm[mode] = warm_up_responder(instance.url, lists[mode], mode, work)
            runs[mode] = load(instance.url, lists[mode], connections=CONNECTIONS, seconds=seconds, pids=instance.pids,
                              what=f"Hengxin OCSP {mode}", work=work)
        hang = no_hang("127.0.0.1", instance.port, path, requests["post"][0])
        return {"certificates": count, "revoked": len(revoked), "issue_seconds": round(issue_seconds, 1),
                "responder_url": url, "warm_up": warm, "runs": runs, "no_hang": hang,
                "server_rss_mib": [harness.rss_mib(pid) for pid in instance.pids],
                "serials": serials, "revoked_serials": revoked}
    finally:
        instance.stop()


# -- openssl ocsp ----------------------------------------------------------------------------------------

OPENSSL_CA = """[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = Bench OpenSSL OCSP CA
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_ocsp ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"openssl {' '.join(args)} failed: {result.stderr.decode(errors='replace')[-800:]}")


def openssl_ca(directory: Path, serials: list[int], revoked: set[int]) -> x509.Certificate:
    """A P-256 CA, a delegated responder certificate (OCSPSigning) and index.txt for ``serials``."""
    directory.mkdir()
    (directory / "ca.cnf").write_text(OPENSSL_CA)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=directory)
    openssl("req", "-new", "-x509", "-key", "ca.key", "-out", "ca.pem", "-days", "30", "-config", "ca.cnf",
            "-extensions", "v3_ca", cwd=directory)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ocsp.key", cwd=directory)
    openssl("req", "-new", "-key", "ocsp.key", "-subj", "/CN=Bench OpenSSL OCSP responder", "-out", "ocsp.csr",
            cwd=directory)
    openssl("x509", "-req", "-in", "ocsp.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1", "-days", "30",
            "-extfile", "ca.cnf", "-extensions", "v3_ocsp", "-out", "ocsp.pem", cwd=directory)
    lines = []
    for i, serial in enumerate(serials):
        hexadecimal = format(serial, "X")
        hexadecimal = "0" * (len(hexadecimal) % 2) + hexadecimal
        if serial in revoked:
            lines.append(f"R\t301231000000Z\t250101000000Z,keyCompromise\t{hexadecimal}\tunknown\t/CN=bench-{i}")
        else:
            lines.append(f"V\t301231000000Z\t\t{hexadecimal}\tunknown\t/CN=bench-{i}")
    (directory / "index.txt").write_text("\n".join(lines) + "\n")
    (directory / "index.txt.attr").write_text("unique_subject = no\n")
    return x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())


def listening(port: int) -> bool:
    """Whether a socket listens on ``port`` (from /proc/net, without connecting)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


@contextlib.contextmanager
def openssl_responder(directory: Path, processes: int | None) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``openssl ocsp`` serving index.txt on a free port (``-multi processes`` when given)."""
    port = harness.free_port()
    command = ["openssl", "ocsp", "-index", "index.txt", "-port", str(port), "-rsigner", "ocsp.pem", "-rkey",
               "ocsp.key", "-CA", "ca.pem", "-nmin", "60"]
    if processes:
        command += ["-multi", str(processes)]
    log = directory / f"responder-{port}.log"
    with log.open("wb") as out:
        # With -multi the responder makes itself a session (and process group) leader of its own.
        process = subprocess.Popen(command, cwd=directory, stdout=out, stderr=subprocess.STDOUT)
    try:
        # Ready once it listens; a probe connection would park a responder process, so read the socket table.
        deadline = time.monotonic() + 30
        while not listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"openssl ocsp did not start: {log.read_text()[-1000:]}")
            time.sleep(0.05)
        yield port, process
    finally:
        stop_responder(process, group=bool(processes))


def stop_responder(process: subprocess.Popen[bytes], *, group: bool) -> None:
    """Stop the responder started above and, with -multi, its children (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        if group:
            # The -multi parent may exit before its children do.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        return


def measure_openssl(work: Path, serials: list[int], revoked: set[int], seconds: float,
                    serving_counts: tuple[int, ...]) -> dict[str, Any]:
    progress("openssl ocsp")
    directory = work / "openssl"
    issuer = openssl_ca(directory, serials, revoked)
    requests = ocsp_requests(issuer, serials)
    with openssl_responder(directory, None) as (port, _):
        check_answers(f"http://127.0.0.1:{port}", "/", requests, serials, revoked, "openssl ocsp")
    lists = wrk_requests("/", requests)
    runs: dict[str, Any] = {}
    for serving in serving_counts:
        for mode in MODES:
            with openssl_responder(directory, serving + 1) as (port, process):
                runs[f"{mode}_{serving}"] = load(
                    f"http://127.0.0.1:{port}", lists[mode], connections=serving, seconds=seconds,
                    pids=harness.process_tree(process.pid), what=f"openssl ocsp {mode} ({serving} serving)",
                    work=work,
                )
    with openssl_responder(directory, None) as (port, _):
        hang = no_hang("127.0.0.1", port, "/", requests["post"][0])
    return {"runs": runs, "no_hang": hang}


# -- OpenBao ---------------------------------------------------------------------------------------------


def measure_openbao(work: Path, count: int, csr: bytes, seconds: float, *, warm_up: bool) -> dict[str, Any]:
    progress(f"OpenBao: issuing {count} certificates")
    with harness.openbao_raft(work / "openbao") as bao:
        sign_path = harness.openbao_pki(bao)
        local = threading.local()

        def sign(_: int) -> int:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=bao.url, headers=bao.headers, timeout=120)
            answer = client.post(sign_path, json={"csr": csr.decode(), "common_name": "ocsp-bench.example"})
            if answer.status_code != 200:
                raise SystemExit(f"OpenBao sign: {answer.status_code} {answer.text[:300]}")
            return int(answer.json()["data"]["serial_number"].replace(":", ""), 16)

        started = time.perf_counter()
        with timed_pool(8) as pool:
            serials = list(pool.map(sign, range(count)))
        issue_seconds = time.perf_counter() - started
        revoked = set(serials[::REVOKED_EVERY])
        for serial in sorted(revoked):
            text = format(serial, "x")
            text = "0" * (len(text) % 2) + text
            colons = ":".join(text[i : i + 2] for i in range(0, len(text), 2))
            bao.request("POST", "pki/revoke", {"serial_number": colons})
        issuer = x509.load_pem_x509_certificate(httpx.get(f"{bao.url}/v1/pki/ca/pem", timeout=30).content)
        requests = ocsp_requests(issuer, serials)
        path = "/v1/pki/ocsp"
        nonce_echoed = check_answers(bao.url, path, requests, serials, revoked, "OpenBao", require_nonce=False)
        lists = wrk_requests(path, requests)
        pids = harness.process_tree(bao.process.pid)
        runs: dict[str, Any] = {}
        warm: dict[str, Any] = {}
        for mode in MODES:
            if warm_up:
                warm[mode] = warm_up_responder(bao.url, lists[mode], mode, work)
            runs[mode] = load(bao.url, lists[mode], connections=CONNECTIONS, seconds=seconds, pids=pids,
                              what=f"OpenBao OCSP {mode}", work=work)
        hang = no_hang("127.0.0.1", int(urllib.parse.urlsplit(bao.url).port or 80), path, requests["post"][0])
        return {"certificates": count, "revoked": len(revoked), "issue_seconds": round(issue_seconds, 1),
                "warm_up": warm, "runs": runs, "no_hang": hang, "nonce_echoed": nonce_echoed}


# -- report ----------------------------------------------------------------------------------------------


def main() -> None:
    args = harness.arguments(__doc__.splitlines()[0])
    seconds = args.seconds or (2 if args.quick else 8)
    peer_seconds = 1 if args.quick else seconds
    count = 200 if args.quick else 10_000
    bao_count = 100 if args.quick else 10_000
    harness.require("openssl", "the Debian package openssl")
    csr = make_csr()
    with harness.workspace(SCENARIO) as work:
        ours = measure_hengxin(work, count, csr, seconds, warm_up=not args.quick)
        serials, revoked = ours.pop("serials"), ours.pop("revoked_serials")
        # The quick run (a smoke test) leaves out the two-process openssl runs.
        theirs = measure_openssl(work, serials, revoked, peer_seconds, (1,) if args.quick else (1, 2))
        bao = measure_openbao(work, bao_count, csr, peer_seconds, warm_up=not args.quick)

    rows = []
    for mode in MODES:
        run = ours["runs"][mode]
        single, double = theirs["runs"][f"{mode}_1"], theirs["runs"].get(f"{mode}_2")
        cpu = run.get("server_cpu_seconds")
        note = (f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms at {CONNECTIONS} connections; server CPU "
                f"{round(1000 * cpu / run['requests'], 3) if cpu and run['requests'] else '?'} ms per response")
        rows.append(harness.row(
            f"OCSP {MODE_NAMES[mode]}, {count} certificates", run["rate"], "responses/s",
            peer="openssl ocsp -index, one serving process", peer_value=single["rate"],
            target=f">= {TARGET_RATIO:.0f}x openssl", met=run["rate"] >= TARGET_RATIO * single["rate"],
            generator_cpu_percent=run["generator_cpu_percent"], note=note,
        ))
        if double is not None:
            rows.append(harness.row(
                f"OCSP {MODE_NAMES[mode]} beside openssl with two processes", run["rate"], "responses/s",
                peer="openssl ocsp -index -multi, two serving processes", peer_value=double["rate"],
                generator_cpu_percent=run["generator_cpu_percent"],
            ))
        rows.append(harness.row(
            f"OCSP {MODE_NAMES[mode]} beside OpenBao", run["rate"], "responses/s",
            peer=f"OpenBao PKI /v1/pki/ocsp ({bao_count} certificates, raft)", peer_value=bao["runs"][mode]["rate"],
            generator_cpu_percent=run["generator_cpu_percent"],
            note="OpenBao ignores the nonce (its answers carry none)"
            if mode == "post_nonce" and not bao["nonce_echoed"] else "",
        ))
    hang = ours["no_hang"]
    for name, peer in (("openssl ocsp -index", theirs["no_hang"]), ("OpenBao", bao["no_hang"])):
        rows.append(harness.row(
            "OCSP answer time while one client closed without sending and one stays silent",
            round(1000 * hang["seconds"], 1), "ms",
            peer=name, peer_value=round(1000 * peer["seconds"], 1) if peer["answered_within_limit"] else None,
            target=f"answered within {HANG_LIMIT:g} s", met=bool(hang["answered_within_limit"]),
            note=("the peer answered" if peer["answered_within_limit"]
                  else f"the peer gave no answer within {HANG_LIMIT:g} s (it hangs)"),
        ))
    method = " ".join((
        "Hengxin: hengxin serve with [server] workers = 2, SQLite (synchronous=FULL), default scrypt cost;",
        f"{count} server-tls certificates issued through the API from one P-256 CSR, every {REVOKED_EVERY}th revoked",
        "(keyCompromise); the responder URL taken from their AIA.",
        f"wrk (1 thread, {CONNECTIONS} connections, {seconds:g} s) cycles over one SHA-1 CertID request per",
        "certificate: POST without a nonce, POST with a 16-octet nonce, GET (base64, URL-encoded). In full runs",
        f"each is preceded by a warm-up: {WARM_UP_PASSES} passes over all requests (at most",
        f"{WARM_UP_CAP_SECONDS} s) for POST without a nonce, whose answers are pre-signed and cached in each",
        "worker (the timed run measures that path; the nonce run measures signing), 1 s for the others; OpenBao",
        "gets the same.",
        "openssl ocsp -index (OpenSSL 3.0) serves an index.txt of the same serials (the same ones revoked) with",
        "a P-256 CA and delegated responder made with openssl. It serves one connection at a time, so wrk uses",
        "one connection per serving process, and each run gets a fresh responder with one process more than it",
        "serves with, because wrk's probe connection (opened and closed before the run) parks one process for",
        f"good: -multi 2 for one serving process, -multi 3 for two; {peer_seconds:g} s runs.",
        f"OpenBao: {bao_count} certificates on raft storage (EC P-256 root, every {REVOKED_EVERY}th revoked),",
        f"{CONNECTIONS} connections, {peer_seconds:g} s runs.",
        "Every responder's answers were spot-checked (successful, right serial and status, nonce echoed) before",
        "the load. Hang check: one client connects and closes without sending, another connects and stays",
        f"silent, then a third client's request must be answered within {HANG_LIMIT:g} s.",
    ))
    harness.save(SCENARIO, {"method": method, "rows": rows, "hengxin": ours, "openssl": theirs, "openbao": bao},
                 quick=args.quick, no_save=args.no_save)


if __name__ == "__main__":
    main()

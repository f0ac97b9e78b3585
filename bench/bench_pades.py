"""PAdES B-T signatures of a one-page PDF through the API, beside pyHanko in-process and pyHanko's CLI.

Ours: a Hengxin instance (``[server] workers = 2``, SQLite as ``hengxin init`` ships it, fsync on, default
scrypt cost; ``--database postgresql`` for a PostgreSQL cluster instead) with an organisation seal
(``hengxin sign seal-create``, custodial EC key in the file key store) that an API token may use.  wrk POSTs
the same ``multipart/form-data`` body (a one-page PDF, ``seal``, ``level=B-T``) to ``/api/v1/signatures/pdf``;
every answer is a PDF signed with the seal key and carrying a signature timestamp from Hengxin's own TSA,
recorded (signature row, TSA token row, audit records) before it is returned; the script checks the records
were written.  One answer is validated with pyHanko (trusting only Hengxin's root: intact, valid, trusted,
timestamp valid) and with poppler's ``pdfsig``.

Peers, on the same machine in the same run, signing the same PDF with a certificate of the same profile
(``organisation-seal``, same key type, same CA chain) issued by Hengxin with a server-generated key:

1. pyHanko in-process: two processes (one per core), each a ``PdfSigner`` with ``SimpleSigner`` and pyHanko's
   ``DummyTimeStamper`` (an RSA-2048 TSA certificate and key made here, as the class signs only with RSA;
   the key loaded once; fixed time), signing in a loop for the same time; nothing is written anywhere.
2. ``pyhanko sign addsig --use-pades --timestamp-url <Hengxin /tsa> pemder`` once per document, a fixed count,
   two at a time: the whole cost of a command-line signature (interpreter start, imports, key load, one HTTP
   timestamp from Hengxin's TSA).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import multiprocessing
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import harness

SCENARIO = "pades"
DATABASES = {"sqlite": "SQLite (as `hengxin init` ships it: WAL, synchronous=FULL",
             "postgresql": "PostgreSQL (fsync on"}
TARGET_RATE = 60.0
TARGET_SHARE = 0.8
SEAL = "bench"
TOKEN_NAME = "bench-signer"
PKCS12_PASSWORD = "bench-peer-passphrase"  # noqa: S105 - a throw-away file
BOUNDARY = "hengxin-bench-boundary-7f3a9c"


# -- the document and the request ---------------------------------------------------------------------------


def one_page_pdf() -> bytes:
    from tests.fixtures.signing import minimal_pdf

    return minimal_pdf(pages=1, text="Hengxin benchmark document")


def multipart(fields: dict[str, str], file_name: str, file_bytes: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with text ``fields`` and one ``file`` part; returns body and Content-Type."""
    parts = []
    for name, value in fields.items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/pdf\r\n\r\n".encode() + file_bytes + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={BOUNDARY}"


# -- setting up the instance --------------------------------------------------------------------------------


def set_up(work: Path, database_url: str = "") -> harness.Hengxin:
    """An initialised instance with seal ``bench``, whose rule admits the API token ``bench-signer``."""
    (work / "hengxin").mkdir()
    instance = harness.hengxin_instance(work / "hengxin", database_url=database_url, workers=2)
    created = instance.cli("sign", "seal-create", SEAL, "--subject-o", "恒信基准测试单位")
    certificate = re.search(r'^certificate = "(\d+)"$', created.stdout, re.MULTILINE)
    if certificate is None:
        raise SystemExit(f"seal-create printed no certificate id: {created.stdout}")
    with instance.config.open("a") as config:
        config.write(f'\n[[signing.seals]]\nname = "{SEAL}"\ncertificate = "{certificate.group(1)}"\n'
                     f'allowed_tokens = ["{TOKEN_NAME}"]\n')
    return instance


def signer_token(instance: harness.Hengxin) -> str:
    """Create the API token ``bench-signer`` (signatures.create only) and return it."""
    with instance.client() as client:
        response = client.post("/api/v1/tokens", json={"name": TOKEN_NAME, "permissions": ["signatures.create"]})
    if response.status_code != 201:
        raise SystemExit(f"creating the API token failed: {response.status_code} {response.text[:500]}")
    return str(response.json()["token"])


def peer_material(instance: harness.Hengxin, work: Path) -> dict[str, Any]:
    """Key files for the peers: an organisation-seal certificate with a server key, the chain, a TSA of our own.

    The signer certificate comes from Hengxin's issuing CA through the API, so key type, profile and chain are
    those of the seal; the TSA certificate and key (EC P-256, timeStamping) are made here for the
    DummyTimeStamper.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    with instance.client() as client:
        response = client.post("/api/v1/certificates", json={
            "profile": "organisation-seal",
            "subject": {"CN": "恒信基准测试单位电子印章（对照）", "O": "恒信基准测试单位"},
            "key": {"mode": "server", "pkcs12_password": PKCS12_PASSWORD},
        })
        if response.status_code != 201:
            raise SystemExit(f"issuing the peer certificate failed: {response.status_code} {response.text[:500]}")
        issued = response.json()
        cas = client.get("/api/v1/cas").json()
    root_pem = next(ca["certificate_pem"] for ca in cas if ca["parent"] is None)
    key, certificate, _extra = pkcs12.load_key_and_certificates(base64.b64decode(issued["pkcs12_base64"]),
                                                                PKCS12_PASSWORD.encode())
    assert key is not None and certificate is not None
    files = {
        "key": work / "peer-key.pem",
        "cert": work / "peer-cert.pem",
        "chain": work / "peer-chain.pem",
        "root": work / "root.pem",
        "tsa_key": work / "tsa-key.pem",
        "tsa_cert": work / "tsa-cert.pem",
    }
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    files["cert"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    leaf_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    chain = [pem for pem in re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?",
                                        issued["chain_pem"], re.DOTALL) if pem.strip() != leaf_pem.strip()]
    files["chain"].write_text("".join(chain))
    files["root"].write_text(root_pem)

    now = dt.datetime.now(dt.UTC)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # pyHanko's dummy TSA is RSA-only
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench peer TSA")])
    tsa_cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(tsa_key, hashes.SHA256())
    )
    files["tsa_key"].write_bytes(tsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    files["tsa_cert"].write_bytes(tsa_cert.public_bytes(serialization.Encoding.PEM))
    return {"files": {k: str(v) for k, v in files.items()}, "key_type": type(key).__name__,
            "curve": getattr(getattr(key, "curve", None), "name", None)}


# -- checking one answer -----------------------------------------------------------------------------------


def _certificate(pem_bytes: bytes) -> Any:
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(pem.unarmor(pem_bytes)[2])


def check_signed(signed: bytes, root_pem: bytes, tsa_root_pem: bytes, work: Path, what: str) -> dict[str, Any]:
    """Validate a signed output with pyHanko and pdfsig; raise unless it is a valid, trusted PAdES B-T signature.

    The signer must chain to ``root_pem`` and the signature timestamp to ``tsa_root_pem``; nothing is fetched.
    """
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    signer_context = ValidationContext(trust_roots=[_certificate(root_pem)], allow_fetching=False)
    tsa_context = ValidationContext(trust_roots=[_certificate(tsa_root_pem)], allow_fetching=False)
    reader = PdfFileReader(io.BytesIO(signed))
    if len(reader.embedded_signatures) != 1:
        raise SystemExit(f"{what}: expected one signature, found {len(reader.embedded_signatures)}")
    embedded = reader.embedded_signatures[0]
    status = validate_pdf_signature(embedded, signer_validation_context=signer_context,
                                    ts_validation_context=tsa_context)
    timestamp = status.timestamp_validity
    checked: dict[str, Any] = {
        "bytes": len(signed),
        "pyhanko_intact": status.intact,
        "pyhanko_valid": status.valid,
        "pyhanko_trusted": status.trusted,
        "subfilter": str(embedded.sig_object.get("/SubFilter")),
        "signer": status.signing_cert.subject.human_friendly,
        "signer_key": status.signing_cert.public_key.algorithm,
        "timestamp_trusted": bool(timestamp and timestamp.valid and timestamp.trusted),
        "timestamp_time": timestamp.timestamp.isoformat() if timestamp else None,
        "tsa_key": timestamp.signing_cert.public_key.algorithm if timestamp else None,
    }
    if not (status.intact and status.valid and status.trusted and checked["timestamp_trusted"]
            and checked["subfilter"] == "/ETSI.CAdES.detached"):
        raise SystemExit(f"{what}: not a valid, trusted PAdES B-T signature: {checked}")
    pdfsig = harness.require("pdfsig", "the Debian package poppler-utils")
    path = work / "checked.pdf"
    path.write_bytes(signed)
    output = subprocess.run([pdfsig, "-nocert", "-no-ocsp", str(path)], capture_output=True, text=True,
                            timeout=60).stdout
    checked["pdfsig"] = " ".join(line.strip() for line in output.splitlines() if "Signature Validation" in line)
    if "Signature is Valid" not in output:
        raise SystemExit(f"{what}: pdfsig does not accept the signature: {output}")
    return checked


# -- peer 1: pyHanko in-process ----------------------------------------------------------------------------


def _peer_timestamper(files: dict[str, str]) -> Any:
    """pyHanko's ``DummyTimeStamper`` over the peer's TSA key and certificate, with its key loaded once.

    The stock class parses its RSA private key again for every token, and cryptography checks an RSA key when it
    loads one (some 50 to 100 ms here), which would make the peer look far slower than pyHanko is: this subclass
    keeps the loaded key and builds the token's signed attributes the way the stock class does.
    """
    from asn1crypto import cms, core, pem
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from pyhanko.sign.general import as_signing_certificate, simple_cms_attribute
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko_certvalidator.util import get_pyca_cryptography_hash

    def load(path: str) -> bytes:
        return pem.unarmor(Path(path).read_bytes())[2]

    class KeptKeyTimeStamper(DummyTimeStamper):  # type: ignore[misc]
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            key = serialization.load_der_private_key(self.tsa_key.dump(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            self.loaded_key = key

        def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str, moment: dt.datetime) -> Any:
            digest = hashes.Hash(get_pyca_cryptography_hash(md_algorithm))
            digest.update(tst_info_data)
            signed_attrs = cms.CMSAttributes([
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(moment)})),
                simple_cms_attribute("signing_certificate", as_signing_certificate(self.tsa_cert)),
                simple_cms_attribute("message_digest", digest.finalize()),
            ])
            signature = self.loaded_key.sign(signed_attrs.dump(), PKCS1v15(), get_pyca_cryptography_hash(md_algorithm))
            return signature, signed_attrs

    return KeptKeyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(load(files["tsa_cert"])),
        tsa_key=asn1_keys.PrivateKeyInfo.load(load(files["tsa_key"])),
        fixed_dt=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )


def _peer_worker(files: dict[str, str], document: bytes, seconds: float, barrier: Any, results: Any) -> None:
    import asyncio
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    signer = signers.SimpleSigner.load(files["key"], files["cert"], ca_chain_files=(files["chain"],))
    assert signer is not None
    timestamper = _peer_timestamper(files)
    metadata = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256",
                                            subfilter=SigSeedSubFilter.PADES)
    pdf_signer = signers.PdfSigner(metadata, signer, timestamper=timestamper)

    def sign_one() -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(document), strict=True)
        output = io.BytesIO()
        asyncio.run(pdf_signer.async_sign_pdf(writer, output=output))
        return output.getvalue()

    sample = sign_one()  # warm: imports, the dummy token used to size the signature
    barrier.wait(timeout=300)  # every process ready: start together
    count = 0
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        sign_one()
        count += 1
    results.put((count, time.perf_counter() - began, sample))


def pyhanko_in_process(files: dict[str, str], document: bytes, seconds: float, processes: int) -> dict[str, Any]:
    """Signatures per second of ``processes`` processes each signing in a loop for ``seconds``.

    Returns the figures and one signed sample (checked like the API's answer).
    """
    import queue

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    barrier = context.Barrier(processes)
    workers = [context.Process(target=_peer_worker, args=(files, document, seconds, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    answers: list[tuple[int, float, bytes]] = []
    try:
        deadline = time.monotonic() + seconds + 300
        while len(answers) < processes:
            try:
                answers.append(results.get(timeout=1))
            except queue.Empty:
                failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                if failed or time.monotonic() > deadline:
                    raise SystemExit(f"the pyHanko peer processes failed (exit codes {failed})") from None
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
                worker.join()
    total = sum(count for count, _, _ in answers)
    elapsed = max(took for _, took, _ in answers)
    return {"processes": processes, "signatures": total, "seconds": round(elapsed, 2),
            "rate": round(total / elapsed, 1), "output_bytes": len(answers[0][2]), "sample": answers[0][2]}


# -- peer 2: pyhanko sign addsig per document --------------------------------------------------------------


def pyhanko_cli(files: dict[str, str], document: Path, tsa_url: str, count: int, parallel: int,
                work: Path) -> dict[str, Any]:
    """``count`` runs of ``pyhanko sign addsig``, ``parallel`` at a time; signatures per second of wall time."""
    binary = harness.require("pyhanko", "the PyPI package pyhanko-cli")
    out = work / "cli"
    out.mkdir(exist_ok=True)

    def run(i: int) -> float:
        started = time.perf_counter()
        result = subprocess.run(
            [binary, "sign", "addsig", "--field", "Signature1", "--use-pades", "--timestamp-url", tsa_url,
             "pemder", "--key", files["key"], "--cert", files["cert"], "--chain", files["chain"], "--no-pass",
             str(document), str(out / f"signed-{i}.pdf")],
            capture_output=True, text=True, timeout=120,
        )
        if result.returncode != 0:
            raise SystemExit(f"pyhanko sign addsig failed: {result.stderr[-2000:]}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        each = list(pool.map(run, range(count)))
    elapsed = time.perf_counter() - started
    return {"invocations": count, "parallel": parallel, "seconds": round(elapsed, 2),
            "rate": round(count / elapsed, 2), "p50_ms": harness.percentile([e * 1000 for e in each], 0.5)}


# -- the database --------------------------------------------------------------------------------------------


class Database:
    """Where the instance keeps its records: SQLite in its data directory (the default) or a PostgreSQL cluster."""

    def __init__(self, kind: str, cluster: Any = None) -> None:
        self.kind = kind
        self.cluster = cluster
        self.name = cluster.create_database() if cluster is not None else ""

    @property
    def url(self) -> str:
        return self.cluster.url(self.name) if self.cluster is not None else ""

    def count(self, instance: harness.Hengxin, sql: str) -> int:
        """One integer from a read-only query, beside the running server."""
        if self.cluster is not None:
            return int(self.cluster.psql(sql, self.name).strip())
        import sqlite3

        connection = sqlite3.connect(f"file:{instance.data_dir / 'hengxin.db'}?mode=ro", uri=True, timeout=30)
        try:
            return int(connection.execute(sql).fetchone()[0])
        finally:
            connection.close()


@contextlib.contextmanager
def database(kind: str) -> Iterator[Database]:
    if kind == "sqlite":
        yield Database(kind)
        return
    with harness.postgres() as cluster:
        yield Database(kind, cluster)


def signatures_recorded(db: Database, instance: harness.Hengxin) -> dict[str, int]:
    return {
        "signature_rows": db.count(instance, "SELECT count(*) FROM signing_signatures WHERE kind = 'pdf'"),
        "audit_records": db.count(instance, "SELECT count(*) FROM audit_records WHERE action = 'signature.pdf'"),
        "timestamp_tokens": db.count(instance, "SELECT count(*) FROM timestamp_tokens"),
    }


# -- main -----------------------------------------------------------------------------------------------------


def main() -> None:
    args = harness.arguments(__doc__.splitlines()[0], [
        ("--connections", {"type": int, "default": 4, "help": "wrk connections (default 4: two per worker)"}),
        ("--database", {"choices": ("sqlite", "postgresql"), "default": "sqlite",
                        "help": "the instance's database (default sqlite, as `hengxin init` ships it)"}),
    ])
    seconds = args.seconds or (3.0 if args.quick else 20.0)
    cli_count = 4 if args.quick else 20
    document = one_page_pdf()
    began = time.monotonic()

    def progress(what: str) -> None:
        print(f"[{time.monotonic() - began:5.1f} s] {what}", file=sys.stderr, flush=True)

    with harness.workspace(SCENARIO) as work, database(args.database) as db:
        instance = set_up(work, db.url)
        progress("instance initialised, seal issued")
        try:
            instance.start()
            progress("instance serving")
            token = signer_token(instance)
            material = peer_material(instance, work)
            files = material["files"]
            root_pem = Path(files["root"]).read_bytes()
            body, content_type = multipart({"seal": SEAL, "level": "B-T"}, "document.pdf", document)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
            with instance.client() as client:
                response = client.post("/api/v1/signatures/pdf", content=body, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"signing through the API failed: {response.status_code} {response.text[:500]}")
            checked = {"api": check_signed(response.content, root_pem, root_pem, work, "the API's answer")}
            progress("peer certificate issued, API answer checked")
            request = harness.Request("POST", "/api/v1/signatures/pdf", body, headers)
            # Warm both workers (one keep-alive client would reach only one): the first signature in a process
            # loads the signer, the TSA's dummy token, pyHanko's XMP support (lxml) ...
            warm = harness.wrk(instance.url, [request], connections=8, seconds=2, work=work)
            harness.check_clean(warm, "PAdES warm-up")
            load = harness.wrk(instance.url, [request], connections=args.connections, seconds=seconds,
                               server_pids=instance.pids, work=work)
            harness.check_clean(load, "PAdES B-T through the API")
            recorded = signatures_recorded(db, instance)
            if recorded["signature_rows"] < load.requests or recorded["audit_records"] < load.requests:
                raise SystemExit(f"{load.requests} signatures answered but only {recorded} recorded")
            progress(f"ours: {load.rate}/s")

            in_process = pyhanko_in_process(files, document, seconds, processes=os.cpu_count() or 2)
            progress(f"pyHanko in-process: {in_process['rate']}/s")
            checked["pyhanko_in_process"] = check_signed(in_process.pop("sample"), root_pem,
                                                         Path(files["tsa_cert"]).read_bytes(), work, "pyHanko's output")
            pdf_path = work / "document.pdf"
            pdf_path.write_bytes(document)
            cli = pyhanko_cli(files, pdf_path, f"{instance.url}/tsa", cli_count, 2, work)
            progress(f"pyhanko CLI: {cli['rate']}/s")
        finally:
            instance.stop()

    share = load.rate / in_process["rate"] if in_process["rate"] else 0.0
    met = load.rate >= TARGET_RATE and share >= TARGET_SHARE
    rows = [
        harness.row("PAdES B-T, one-page PDF, through the API", load.rate, "signatures/s",
                    peer="pyHanko in-process (2 processes, SimpleSigner, DummyTimeStamper)",
                    peer_value=in_process["rate"], target=f">= {TARGET_RATE:g}/s and >= 80 % of in-process pyHanko",
                    met=met, generator_cpu_percent=load.generator_cpu_percent,
                    note=f"{round(100 * share)} % of in-process pyHanko; p50 {load.p50_ms} ms, p99 {load.p99_ms} ms "
                         f"at {load.connections} connections"),
        harness.row("PAdES B-T, one-page PDF, through the API", load.rate, "signatures/s",
                    peer="pyhanko sign addsig per document (2 at a time, timestamps from Hengxin's /tsa)",
                    peer_value=cli["rate"], generator_cpu_percent=load.generator_cpu_percent,
                    note=f"{cli['invocations']} invocations, p50 {cli['p50_ms']:.0f} ms each"),
    ]
    method = (
        f"Hengxin with [server] workers = 2 on {DATABASES[args.database]}, default scrypt cost), "
        f"organisation seal with a custodial {material['curve'] or material['key_type']} key in the file key "
        f"store; wrk with {args.connections} connections for {seconds:g} s POSTing one multipart body (a "
        f"{len(document)}-byte one-page PDF, seal, level=B-T) to /api/v1/signatures/pdf; each answer is signed, "
        f"timestamped by Hengxin's TSA and recorded with its audit records before it is returned; one answer "
        f"validated by pyHanko (Hengxin root only) and pdfsig. Peer 1: pyHanko {_pyhanko_version()} PdfSigner "
        f"with SimpleSigner and DummyTimeStamper (RSA-2048 TSA key loaded once, fixed time) in "
        f"{in_process['processes']} processes for "
        f"{seconds:g} s, same PDF, an organisation-seal certificate of the same CA and key type. Peer 2: "
        f"`pyhanko sign addsig --use-pades --timestamp-url <Hengxin /tsa> pemder`, {cli['invocations']} "
        f"invocations 2 at a time."
    )
    harness.save(SCENARIO, {
        "method": method,
        "rows": rows,
        "ours": load.as_dict(),
        "pyhanko_in_process": in_process,
        "pyhanko_cli": cli,
        "checked": checked,
        "recorded_after_load": recorded,
        "document_bytes": len(document),
    }, quick=args.quick, no_save=args.no_save)


def _pyhanko_version() -> str:
    from importlib.metadata import version

    return version("pyhanko")


if __name__ == "__main__":
    main()

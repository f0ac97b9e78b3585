"""Fixtures for the reliability suite: real ``hengxin serve`` processes and load helpers.

A :class:`ServeNode` is one ``hengxin serve`` subprocess on 127.0.0.1 with its
own configuration file; it can be started, killed with SIGKILL and started
again on the same port with the same configuration.  :class:`IssuanceLoad`
issues CSR-based certificates (and revokes some of them) from a few threads
and remembers exactly what each client was told, so a test can compare the
clients' view with the database after a crash.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from tests.fixtures.postgres import free_port

HENGXIN = str(Path(sys.executable).parent / "hengxin")
# scrypt at 2^14 keeps start-up fast; the production cost has its own test elsewhere.
ENV = {**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14"}


def write_config(path: Path, *, data_dir: Path, port: int, database_url: str = "", server: str = "",
                 ca: str = "") -> Path:
    """Write a minimal TOML configuration for one node and return its path."""
    path.write_text(
        f"""[instance]
data_dir = "{data_dir}"
base_url = "http://127.0.0.1:{port}"

[database]
url = "{database_url}"

[server]
host = "127.0.0.1"
port = {port}
rate_limit_per_minute = 0
{server}

[ca]
{ca}
"""
    )
    return path


def run_cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``hengxin --config CONFIG ARGS...`` and return the finished process (never raises on exit code)."""
    return subprocess.run([HENGXIN, "--config", str(config), *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


class ServeNode:
    """One ``hengxin serve`` subprocess; its output goes to ``log`` (appended across restarts)."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config = config
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([HENGXIN, "--config", str(self.config), "serve"], env=ENV,
                                            stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise AssertionError(f"hengxin serve exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("hengxin serve did not answer /healthz in time")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing, no lease release."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclasses.dataclass
class Instance:
    """An initialised data directory with one configuration per node."""

    data_dir: Path
    configs: list[Path]
    nodes: list[ServeNode]

    @property
    def token(self) -> str:
        return (self.data_dir / "secrets" / "admin-token").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_instance(tmp_path: Path, nodes: int = 1, database_url: str = "", server: str = "",
                  ca: str = "") -> Instance:
    """Initialise an instance (``hengxin init``) and prepare ``nodes`` serve nodes on free ports."""
    data_dir = tmp_path / "var"
    ports = [free_port() for _ in range(nodes)]
    configs = [write_config(tmp_path / f"node-{i}.toml", data_dir=data_dir, port=port, database_url=database_url,
                            server=server, ca=ca) for i, port in enumerate(ports)]
    result = run_cli(configs[0], "init")
    assert result.returncode == 0, result.stderr
    return Instance(data_dir, configs, [ServeNode(c, p, tmp_path / f"node-{i}.log")
                                        for i, (c, p) in enumerate(zip(configs, ports, strict=True))])


@pytest.fixture
def instance_factory(tmp_path: Path) -> Iterator[Callable[..., Instance]]:
    """Build instances; every node started through them is stopped at the end."""
    made: list[Instance] = []

    def factory(**options: object) -> Instance:
        instance = make_instance(tmp_path, **options)  # type: ignore[arg-type]
        made.append(instance)
        return instance

    yield factory
    for instance in made:
        for node in instance.nodes:
            node.stop()


# -- load ------------------------------------------------------------------------------------------------

_KEY = ec.generate_private_key(ec.SECP256R1())


def csr_pem(common_name: str) -> str:
    """A server-tls CSR for ``common_name``.  One key is reused: issuance does not refuse key reuse for CSRs."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ).add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@dataclasses.dataclass
class Outcome:
    """What the clients were told: serial (hex) to DER for every 201, and the serials revoked with a 200."""

    issued: dict[str, bytes] = dataclasses.field(default_factory=dict)
    issued_serials: list[str] = dataclasses.field(default_factory=list)  # every 2xx, duplicates kept
    revoked: set[str] = dataclasses.field(default_factory=set)
    errors: list[str] = dataclasses.field(default_factory=list)  # unexpected HTTP answers (not transport errors)
    transport_errors: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class IssuanceLoad:
    """Threads issuing (and every ``revoke_every``-th time revoking) against a list of node URLs.

    Each thread stops at ``deadline``, after ``per_thread`` issuances, or at its
    first transport error (the server is gone).  Answers other than 201/200
    (and 409 for a revocation race) are collected as errors.
    """

    def __init__(self, urls: list[str], headers: dict[str, str], *, threads: int, per_thread: int,
                 seconds: float, revoke_every: int = 3, tag: str = "load") -> None:
        self.urls = urls
        self.headers = headers
        self.threads = threads
        self.per_thread = per_thread
        self.seconds = seconds
        self.revoke_every = revoke_every
        self.tag = tag
        self.outcome = Outcome()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        deadline = time.monotonic() + self.seconds
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index, deadline), daemon=True)
            worker.start()
            self._workers.append(worker)

    def join(self, timeout: float = 60) -> Outcome:
        for worker in self._workers:
            worker.join(timeout)
            assert not worker.is_alive(), "a load thread did not finish"
        return self.outcome

    def issued_count(self) -> int:
        with self.outcome.lock:
            return len(self.outcome.issued)

    def _run(self, index: int, deadline: float) -> None:
        outcome = self.outcome
        clients = [httpx.Client(base_url=url, headers=self.headers, timeout=20) for url in self.urls]
        mine: list[str] = []
        try:
            for n in range(self.per_thread):
                if time.monotonic() > deadline:
                    return
                client = clients[(index + n) % len(clients)]
                name = f"{self.tag}-{index}-{n}.crash.example.gov.cn"
                response = client.post("/api/v1/certificates", json={"profile": "server-tls",
                                                                      "csr": csr_pem(name)})
                if response.status_code != 201:
                    with outcome.lock:
                        outcome.errors.append(f"issue {response.status_code} {response.text[:300]}")
                    continue
                body = response.json()["certificate"]
                der = x509.load_pem_x509_certificate(body["certificate_pem"].encode()).public_bytes(
                    serialization.Encoding.DER)
                serial = body["serial"].replace(":", "").lower()
                with outcome.lock:
                    outcome.issued[serial] = der
                    outcome.issued_serials.append(serial)
                mine.append(serial)
                if self.revoke_every and n % self.revoke_every == self.revoke_every - 1:
                    victim = mine[len(mine) // 2]
                    other = clients[(index + n + 1) % len(clients)]
                    revoked = other.post(f"/api/v1/certificates/serial:{victim}/revoke",
                                         json={"reason": "keyCompromise"})
                    with outcome.lock:
                        if revoked.status_code == 200:
                            outcome.revoked.add(victim)
                        elif revoked.status_code != 409:
                            outcome.errors.append(f"revoke {revoked.status_code} {revoked.text[:300]}")
        except httpx.TransportError:
            with outcome.lock:
                outcome.transport_errors += 1
        finally:
            for client in clients:
                client.close()


def normal_serial(value: int | str) -> str:
    return (format(value, "x") if isinstance(value, int) else value.replace(":", "")).lower().lstrip("0") or "0"


def ocsp_status(url: str, certificate: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
    response = httpx.post(f"{url}/ocsp", content=request.public_bytes(serialization.Encoding.DER),
                          headers={"Content-Type": "application/ocsp-request"}, timeout=20)
    assert response.status_code == 200
    parsed = ocsp.load_der_ocsp_response(response.content)
    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return parsed.certificate_status

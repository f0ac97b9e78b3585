"""Probes: prove over HTTP that a restored sandbox instance works.

A probe is anything with a ``name`` and ``run(context) -> dict`` (:class:`Probe`):
it talks to the sandbox at ``context.base_url`` with the sandbox-only bearer
token, checks what comes back with an implementation nobody here wrote
(openssl) where one exists, and returns the facts worth reporting.  It raises
:class:`ProbeFailed` when the restored platform misbehaves and
:class:`ProbeSkipped` when the platform has nothing to probe (no revoked
certificate at backup time, a route that does not exist in this version).

Domain probes that need code from another package (signing a PDF) are
registered by ``api/`` as further :class:`Probe` objects, so this module
imports no domain package.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dr.errors import ProbeFailed

PROBE_PROFILE = "dr-probe"
PROBE_SUBJECT = "Hengxin DR probe"


class ProbeSkipped(Exception):  # noqa: N818 - a control-flow signal, not an error of the platform
    """The probe has nothing to check on this platform; the reason is reported."""


@dataclasses.dataclass
class ProbeContext:
    """What a probe gets: the sandbox's address, a sandbox-only token, a scratch directory, shared facts."""

    drill_id: str
    base_url: str
    token: str
    work_dir: Path
    openssl: str = "openssl"
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0
        )

    def write(self, name: str, data: bytes) -> Path:
        path = self.work_dir / name
        path.write_bytes(data)
        return path

    def openssl_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed program, no shell
            [self.openssl, *args], capture_output=True, text=True, timeout=60, check=False
        )


@runtime_checkable
class Probe(Protocol):
    name: str

    def run(self, context: ProbeContext) -> dict[str, Any]:
        """Check one thing; return facts for the report.  Raises ProbeFailed or ProbeSkipped."""
        ...


def _expect(response: httpx.Response, what: str, status: int = 200) -> httpx.Response:
    if response.status_code != status:
        raise ProbeFailed(
            f"{what}: the sandbox answered HTTP {response.status_code}: {response.text[:300]}",
            detail_zh=f"{what}：沙箱返回 HTTP {response.status_code}",
        )
    return response


def _pem(certificates: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _cas(context: ProbeContext) -> dict[str, dict[str, Any]]:
    """The sandbox's CAs by name (cached in the context's facts)."""
    if "cas" not in context.facts:
        with context.client() as client:
            items = _expect(client.get("/api/v1/cas"), "listing the CAs").json()
        context.facts["cas"] = {item["name"]: item for item in items}
    cas: dict[str, dict[str, Any]] = context.facts["cas"]
    return cas


def _chain_files(context: ProbeContext, ca_name: str) -> tuple[Path, Path]:
    """(root PEM file, intermediates PEM file) for the chain above ``ca_name`` as the sandbox serves it."""
    cas = _cas(context)
    chain: list[x509.Certificate] = []
    name: str | None = ca_name
    while name is not None and name in cas and len(chain) < 10:
        entry = cas[name]
        chain.append(x509.load_pem_x509_certificate(entry["certificate_pem"].encode()))
        name = entry.get("parent")
    if not chain:
        raise ProbeFailed(f"the sandbox does not know CA {ca_name!r}", detail_zh="沙箱中没有该 CA")
    root = context.write(f"root-{ca_name}.pem", _pem(chain[-1:]))
    intermediates = context.write(f"intermediates-{ca_name}.pem", _pem(chain[:-1]) or _pem(chain[-1:]))
    return root, intermediates


class ReadyProbe:
    """``/readyz`` answers 200: database, keys, audit key, CA and TSA are usable."""

    name = "ready"

    def run(self, context: ProbeContext) -> dict[str, Any]:
        with context.client() as client:
            response = _expect(client.get("/readyz"), "/readyz")
        return {"checks": response.json().get("checks", {})}


class CertificateProbe:
    """The restored CA issues a short-lived ``dr-probe`` certificate naming the drill; ``openssl verify``
    accepts it against the restored root.  The certificate is handed to ``on_issued`` (the drill records
    it in production as issued and immediately revoked)."""

    name = "certificate"

    def __init__(self, on_issued: Callable[[x509.Certificate, str], None] | None = None) -> None:
        self.on_issued = on_issued

    def run(self, context: ProbeContext) -> dict[str, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        common_name = f"{PROBE_SUBJECT} {context.drill_id}"[:64]
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .sign(key, hashes.SHA256())
        )
        body = {"profile": PROBE_PROFILE, "csr": csr.public_bytes(serialization.Encoding.PEM).decode()}
        with context.client() as client:
            issued = _expect(client.post("/api/v1/certificates", json=body), "issuing the probe certificate", 201)
        document = issued.json()
        info = document["certificate"]
        certificate = x509.load_pem_x509_certificate(info["certificate_pem"].encode())
        leaf = context.write("probe.pem", info["certificate_pem"].encode())
        root, intermediates = _chain_files(context, info["ca"])
        verified = context.openssl_run("verify", "-CAfile", str(root), "-untrusted", str(intermediates), str(leaf))
        if verified.returncode != 0 or ": OK" not in verified.stdout:
            raise ProbeFailed(
                f"openssl verify refused the probe certificate: {(verified.stderr or verified.stdout).strip()[:300]}",
                detail_zh="openssl verify 未通过探测证书",
            )
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        if self.on_issued is not None:
            self.on_issued(certificate, info["ca"])
        context.facts["probe_certificate"] = info
        return {
            "serial": info["serial"],
            "ca": info["ca"],
            "subject": info["subject"],
            "validity_seconds": int(lifetime.total_seconds()),
            "openssl_verify": verified.stdout.strip(),
        }


class RevocationProbe:
    """A certificate revoked at backup time is reported revoked by the sandbox's OCSP responder
    (``openssl ocsp``, response signature verified) and listed in its CRL when the CRL post-dates
    the revocation."""

    name = "revocation"

    def run(self, context: ProbeContext) -> dict[str, Any]:
        with context.client() as client:
            page = _expect(
                client.get("/api/v1/certificates", params={"status": "revoked", "limit": 100}),
                "listing revoked certificates",
            ).json()
        # Not the probe certificates of earlier drills: those were never revoked in the backed-up database.
        candidates = [
            c for c in page.get("items", []) if PROBE_SUBJECT not in c.get("subject", "") and c.get("certificate_pem")
        ]
        if not candidates:
            raise ProbeSkipped("no certificate was revoked at backup time")
        chosen = candidates[0]
        certificate = x509.load_pem_x509_certificate(chosen["certificate_pem"].encode())
        ca_name = chosen["ca"]
        cas = _cas(context)
        issuer_pem = cas[ca_name]["certificate_pem"].encode()
        issuer_file = context.write(f"issuer-{ca_name}.pem", issuer_pem)
        cert_file = context.write("revoked.pem", chosen["certificate_pem"].encode())
        root, intermediates = _chain_files(context, ca_name)
        answer = context.openssl_run(
            "ocsp", "-issuer", str(issuer_file), "-cert", str(cert_file), "-url", context.base_url + "/ocsp",
            "-CAfile", str(root), "-verify_other", str(intermediates), "-no_nonce",
        )
        if answer.returncode != 0 or "Response verify OK" not in answer.stderr + answer.stdout:
            raise ProbeFailed(
                f"the sandbox's OCSP answer does not verify: {(answer.stderr or answer.stdout).strip()[:300]}",
                detail_zh="沙箱 OCSP 响应验证失败",
            )
        if f"{cert_file}: revoked" not in answer.stdout:
            raise ProbeFailed(
                f"the sandbox's OCSP responder does not report certificate {chosen['serial']} as revoked: "
                f"{answer.stdout.strip()[:300]}",
                detail_zh="沙箱 OCSP 未报告该证书已吊销",
            )
        with httpx.Client(base_url=context.base_url, timeout=30.0) as client:
            crl_response = _expect(client.get(f"/crl/{ca_name}.crl"), "fetching the CRL")
        crl = x509.load_der_x509_crl(crl_response.content)
        issuer = x509.load_pem_x509_certificate(issuer_pem)
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise ProbeFailed("the sandbox's CRL signature does not verify", detail_zh="沙箱 CRL 签名无效")
        listed = crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None
        revoked_at = dt.datetime.fromisoformat(chosen["revoked_at"]) if chosen.get("revoked_at") else None
        crl_time = crl.last_update_utc
        if not listed and (revoked_at is None or revoked_at <= crl_time):
            raise ProbeFailed(
                f"certificate {chosen['serial']} was revoked before the CRL of {crl_time.isoformat()} "
                "but the CRL does not list it",
                detail_zh="CRL 未列出已吊销的证书",
            )
        return {
            "serial": chosen["serial"],
            "ca": ca_name,
            "ocsp": "revoked",
            "crl": "listed" if listed else "revoked after the restored CRL was issued (OCSP only)",
            "crl_this_update": crl_time.isoformat(),
        }


class TimestampProbe:
    """The sandbox's TSA grants a token for a probe document that ``openssl ts -verify`` accepts
    against the restored root.  The token is handed to ``on_issued`` (recorded in production)."""

    name = "timestamp"

    def __init__(self, on_issued: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.on_issued = on_issued

    def run(self, context: ProbeContext) -> dict[str, Any]:
        data = context.write("probe-document.txt", f"Hengxin DR drill {context.drill_id}\n".encode())
        query = context.work_dir / "probe.tsq"
        made = context.openssl_run("ts", "-query", "-data", str(data), "-cert", "-sha256", "-out", str(query))
        if made.returncode != 0:
            raise ProbeFailed(f"openssl ts -query failed: {made.stderr.strip()[:200]}")
        with httpx.Client(base_url=context.base_url, timeout=30.0) as client:
            response = client.post(
                "/tsa",
                content=query.read_bytes(),
                headers={
                    "Content-Type": "application/timestamp-query",
                    "Authorization": f"Bearer {context.token}",
                },
            )
        _expect(response, "the TSA")
        reply = context.write("probe.tsr", response.content)
        cas = _cas(context)
        issuing = next((name for name, ca in cas.items() if ca.get("parent")), next(iter(cas)))
        root, intermediates = _chain_files(context, issuing)
        verified = context.openssl_run(
            "ts", "-verify", "-in", str(reply), "-queryfile", str(query), "-CAfile", str(root),
            "-untrusted", str(intermediates),
        )
        if verified.returncode != 0 or "Verification: OK" not in verified.stdout:
            raise ProbeFailed(
                f"openssl ts -verify refused the sandbox's token: {(verified.stderr or verified.stdout).strip()[:300]}",
                detail_zh="openssl ts -verify 未通过沙箱时间戳",
            )
        facts = {
            "reply_sha256": _sha256(response.content),
            "openssl_ts_verify": verified.stdout.strip(),
        }
        if self.on_issued is not None:
            self.on_issued(facts)
        return facts


class DirectoryProbe:
    """The restored directory answers: its users can be listed.  (A real password login needs a
    credential the drill does not have; see docs/dr.md.)"""

    name = "directory"

    def run(self, context: ProbeContext) -> dict[str, Any]:
        with context.client() as client:
            response = client.get("/api/v1/users", params={"limit": 500})
        if response.status_code == 404:
            raise ProbeSkipped("this version has no directory API")
        _expect(response, "listing users")
        items = response.json().get("items", [])
        if not items:
            raise ProbeSkipped("the directory held no users at backup time")
        return {"users_listed": len(items), "logins": sorted(str(u.get("login")) for u in items)[:5]}


def default_probes(
    *,
    on_certificate: Callable[[x509.Certificate, str], None] | None = None,
    on_timestamp: Callable[[dict[str, Any]], None] | None = None,
) -> list[Probe]:
    return [
        ReadyProbe(),
        CertificateProbe(on_certificate),
        RevocationProbe(),
        TimestampProbe(on_timestamp),
        DirectoryProbe(),
    ]


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

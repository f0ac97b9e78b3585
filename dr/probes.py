"""Probes: prove over HTTP that a restored sandbox instance works.

A probe is anything with a ``name`` and ``run(context) -> dict`` (:class:`Probe`):
it talks to the sandbox at ``context.base_url`` with the sandbox-only bearer
token, checks what comes back with an implementation nobody here wrote
(openssl) where one exists, and returns the facts worth reporting.  It raises
:class:`ProbeFailed` when the restored platform misbehaves and
:class:`ProbeSkipped` when the platform has nothing to probe (no revoked
certificate at backup time, a route that does not exist in this version).

Every probe talks HTTP only, so this module imports no domain package; what
a probe needs from the restored platform (the name of the seal it may sign
with) the drill puts into the sandbox's configuration.  ``api/`` may register
further :class:`Probe` objects.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import shutil
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
    """The restored directory answers: its users can be listed (a password login is :class:`LoginProbe`)."""

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


PDF = "application/pdf"


def probe_pdf(text: str) -> bytes:
    """A small valid one-page A4 PDF showing ``text`` (ASCII; written by hand so no PDF library is needed)."""
    escaped = text.encode("ascii", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    content = b"BT /F1 14 Tf 72 760 Td (" + escaped + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    identifier = _sha256(bytes(out))[:32].encode("ascii")
    out += b"trailer\n<< /Size %d /Root 1 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, identifier, identifier, xref,
    )
    return bytes(out)


def _not_available(what: str, reason: str, reason_zh: str) -> ProbeFailed:
    return ProbeFailed(f"{what} not available: {reason}", detail_zh=f"{reason_zh}，无法探测")


class SignatureProbe:
    """The sandbox signs a generated one-page PDF PAdES B-T with the restored platform seal; its own
    verification reports the signature intact, valid and trusted, and ``qpdf --check`` accepts the file.

    The signed PDF never leaves the sandbox directory (it is deleted at once); its facts go to
    ``on_signed`` (the drill records them in production as ``dr.probe_signature``).  ``seal`` is the
    name the sandbox configuration gives the seal; ``None`` when the restored database holds none.
    """

    name = "signature"

    def __init__(
        self, seal: str | None, on_signed: Callable[[dict[str, Any]], None] | None = None, qpdf: str = "qpdf"
    ) -> None:
        self.seal = seal
        self.on_signed = on_signed
        self.qpdf = qpdf

    def run(self, context: ProbeContext) -> dict[str, Any]:
        if self.seal is None:
            raise _not_available(
                "PDF signing",
                "the restored database holds no valid platform seal certificate",
                "恢复的数据库中没有有效的平台印章证书",
            )
        qpdf = shutil.which(self.qpdf)
        if qpdf is None:
            raise ProbeFailed(
                "qpdf is not installed: install the Debian package qpdf", detail_zh="未安装 qpdf：请安装 qpdf 软件包"
            )
        document = probe_pdf(f"{PROBE_SUBJECT} {context.drill_id}")
        with context.client() as client:
            signed = client.post(
                "/api/v1/signatures/pdf",
                files={"file": ("dr-probe.pdf", document, PDF)},
                data={"seal": self.seal, "level": "B-T", "reason": f"{PROBE_SUBJECT} {context.drill_id}"},
            )
            if signed.status_code == 404:
                raise _not_available("PDF signing", "the sandbox has no signing API", "沙箱没有签名接口")
            _expect(signed, "signing the probe PDF")
            verified = _expect(
                client.post("/api/v1/signatures/verify", files={"file": ("dr-probe.signed.pdf", signed.content, PDF)}),
                "verifying the probe PDF",
            )
        signatures = [s for s in verified.json().get("signatures", []) if s.get("kind") == "signature"]
        if len(signatures) != 1:
            raise ProbeFailed(
                f"the sandbox reports {len(signatures)} signatures in the probe PDF, expected 1",
                detail_zh="沙箱报告的探测 PDF 签名数量不是 1",
            )
        signature = signatures[0]
        failed = [check for check in ("intact", "valid", "trusted") if not signature.get(check)]
        if failed:
            raise ProbeFailed(
                f"the sandbox's verification of the probe PDF is not {', '.join(failed)}: "
                f"{'; '.join(signature.get('problems') or [])[:300]}",
                detail_zh="沙箱对探测 PDF 的验证未通过",
            )
        path = context.write("probe-signed.pdf", signed.content)
        try:
            checked = subprocess.run(  # noqa: S603 - fixed program, no shell
                [qpdf, "--check", str(path)], capture_output=True, text=True, timeout=60, check=False
            )
        finally:
            path.unlink(missing_ok=True)
        if checked.returncode != 0:
            raise ProbeFailed(
                f"qpdf --check refused the signed probe PDF (exit code {checked.returncode}): "
                f"{(checked.stderr or checked.stdout).strip()[:300]}",
                detail_zh="qpdf --check 未通过已签名的探测 PDF",
            )
        signer = signature.get("signer") or {}
        facts = {
            "seal": self.seal,
            "record": signed.headers.get("X-Signature-Record"),
            "level_requested": "B-T",
            "level": signature.get("level"),
            "document_sha256": _sha256(document),
            "output_sha256": _sha256(signed.content),
            "signer_serial": signer.get("serial_number"),
            "signer_fingerprint": signer.get("sha256"),
            "signer_subject": signer.get("subject"),
            "timestamp_time": signature.get("timestamp_time"),
            "intact": True,
            "valid": True,
            "trusted": True,
            "qpdf_check": "ok",
            "signed_pdf": "discarded",
        }
        if self.on_signed is not None:
            self.on_signed(facts)
        return facts


class LoginProbe:
    """A temporary user created through the sandbox's directory API (so only in the scratch database)
    logs in with a password; the access token verifies against the sandbox's JWKS with the sandbox's
    own issuer (its base URL) and, when given, audience."""

    name = "login"

    def __init__(self, audience: str | None = None) -> None:
        self.audience = audience

    def run(self, context: ProbeContext) -> dict[str, Any]:
        import secrets as pysecrets

        import jwt

        login = f"dr-probe-{context.drill_id}".lower()[:100]
        # Random, and sure to meet any password policy's character classes and length.
        password = pysecrets.token_urlsafe(32) + "aA1!"
        with context.client() as client:
            keys = client.get("/.well-known/jwks.json")
            if keys.status_code == 404:
                raise _not_available("password login", "the instance has no auth component", "实例没有认证组件")
            _expect(keys, "fetching the JWKS")
            created = client.post(
                "/api/v1/users",
                json={"login": login, "display_name": f"{PROBE_SUBJECT} {context.drill_id}", "password": password},
            )
            if created.status_code == 404:
                raise _not_available("password login", "the instance has no directory API", "实例没有目录接口")
            _expect(created, "creating the probe user", 201)
        with httpx.Client(base_url=context.base_url, timeout=30.0) as client:
            answer = client.post("/api/v1/auth/login", json={"login": login, "password": password})
            if answer.status_code == 404:
                raise _not_available("password login", "the instance has no auth component", "实例没有认证组件")
            _expect(answer, "logging in as the probe user")
        access_token = answer.json().get("access_token")
        if not access_token:
            raise ProbeFailed("the login answer carries no access token", detail_zh="登录响应中没有访问令牌")
        try:
            kid = jwt.get_unverified_header(access_token).get("kid")
            entries = [k for k in keys.json().get("keys", []) if k.get("kid") == kid]
            if not entries:
                raise ProbeFailed(
                    f"the access token's key {kid!r} is not in the sandbox's JWKS",
                    detail_zh="访问令牌的密钥不在 JWKS 中",
                )
            key = jwt.PyJWK(entries[0])
            claims = jwt.decode(
                access_token, key.key, algorithms=[key.algorithm_name], issuer=context.base_url,
                audience=self.audience,
                options={"require": ["iss", "aud", "sub", "exp"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError as e:
            raise ProbeFailed(
                f"the access token does not verify against the sandbox's JWKS: {e}",
                detail_zh="访问令牌未通过沙箱 JWKS 验证",
            ) from e
        if claims.get("sub") != login:
            raise ProbeFailed(
                f"the access token names {claims.get('sub')!r}, not the probe user",
                detail_zh="访问令牌的主体不是探测用户",
            )
        return {
            "login": login,
            "algorithm": key.algorithm_name,
            "kid": kid,
            "issuer": claims.get("iss"),
            "audience": claims.get("aud"),
            "amr": claims.get("amr"),
            "expires_in": answer.json().get("expires_in"),
        }


def default_probes(
    *,
    on_certificate: Callable[[x509.Certificate, str], None] | None = None,
    on_timestamp: Callable[[dict[str, Any]], None] | None = None,
    seal: str | None = None,
    on_signature: Callable[[dict[str, Any]], None] | None = None,
    audience: str | None = None,
) -> list[Probe]:
    return [
        ReadyProbe(),
        CertificateProbe(on_certificate),
        RevocationProbe(),
        TimestampProbe(on_timestamp),
        SignatureProbe(seal, on_signature),
        DirectoryProbe(),
        LoginProbe(audience),
    ]


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

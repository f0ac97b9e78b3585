"""Signing through the HTTP API, as a person who logged in with password and TOTP, and as an application
with an organisation seal; every output checked by pyHanko, pdfsig, qpdf or openssl, every refusal by its
problem code and by the record counts staying put."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.policy_decl import (
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from sqlalchemy import func, select

from api.app import create_app
from api.platform import Platform, create_api_token, initialise, open_platform
from ca.service import IssueRequest
from core.clock import FrozenClock
from core.config import SigningSealSettings
from core.store.models import AuditRecordRow
from signing.models import SignatureRow
from tests.fixtures.nss import make_nss_db, require_binary
from tests.fixtures.signing import asn1, minimal_pdf
from tests.helpers import make_settings
from tests.integration.auth.conftest import FAST_PASSWORDS, PASSWORD, code_at, totp_secret

DOCUMENT_MARKER = b"Hengxin test document"


@dataclasses.dataclass
class SigningAPI:
    platform: Platform
    clock: FrozenClock
    client: TestClient
    directory: Path
    robot_token: str
    totp_secret: bytes = b""

    def rows(self) -> int:
        with self.platform.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(SignatureRow)) or 0)

    def audit_actions(self, action: str) -> list[AuditRecordRow]:
        with self.platform.transaction() as session:
            rows = session.scalars(select(AuditRecordRow).where(AuditRecordRow.action == action)).all()
            session.expunge_all()
            return list(rows)

    def login(self, login: str, **extra: Any) -> dict[str, str]:
        response = self.client.post("/api/v1/auth/login", json={"login": login, "password": PASSWORD, **extra})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def strong(self) -> dict[str, str]:
        """A fresh password + TOTP login of zhangwei (a new 30-second step, so the code is not a replay)."""
        self.clock.advance(seconds=30)
        return self.login("zhangwei", totp=code_at(self.totp_secret, self.clock()))

    @property
    def robot(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.robot_token}"}

    def root_pem(self) -> bytes:
        ca = self.platform.services["ca"]
        (root,) = [c for c in ca.list_cas() if c.is_root]
        return root.certificate_pem


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningAPI]:
    directory = tmp_path_factory.mktemp("signing-api")
    # Five minutes in the past: the test moves the clock forward for fresh TOTP steps, and signatures must
    # not carry times ahead of the real clock pyHanko validates against.
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5))
    settings = make_settings(directory / "var", passwords=FAST_PASSWORDS)
    initialise(settings, clock=clock)
    platform = open_platform(settings, clock=clock)
    ca = platform.services["ca"]
    people = platform.services["directory"]
    for login in ("zhangwei", "lisi"):
        people.create_user("test", login=login, display_name=login, password=PASSWORD)
        people.grant_role("test", login, "application")
        ca.issue(IssueRequest(profile="person-sign", key_mode="custodial", owner=f"user:{login}",
                              subject={"CN": login}), actor="test")
    seal = ca.issue(IssueRequest(profile="organisation-seal", key_mode="custodial", owner="seal:office",
                                 subject={"CN": "某某县人民政府电子印章", "O": "某某县人民政府"}), actor="test")
    settings.signing.seals = [
        SigningSealSettings(name="office", certificate=str(seal.certificate.id), allowed_users=["zhangwei"],
                            allowed_tokens=["robot"]),
        SigningSealSettings(name="finance", certificate=str(seal.certificate.id), allowed_roles=["auditor"]),
    ]
    robot_token = create_api_token(platform, "robot", "signatures.create signatures.verify timestamps.issue")
    app = create_app(settings, platform)
    try:
        with TestClient(app) as client:
            context = SigningAPI(platform, clock, client, directory, robot_token)
            headers = context.login("zhangwei")
            uri = client.post("/api/v1/auth/totp", headers=headers).json()["otpauth_uri"]
            context.totp_secret = totp_secret(uri)
            confirmed = client.post("/api/v1/auth/totp/verify", json={"code": code_at(context.totp_secret, clock())},
                                    headers=headers)
            assert confirmed.status_code == 204, confirmed.text
            yield context
    finally:
        platform.close()


def _pdf_upload(data: bytes, **fields: str) -> dict[str, Any]:
    return {"files": {"file": ("document.pdf", data, "application/pdf")}, "data": fields}


def _lta_spec(root: Any) -> PdfSignatureValidationSpec:
    return PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=[root]),
                revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
        )
    )


def _pdfsig(nss_db: str, path: Path) -> list[dict[str, str]]:
    result = subprocess.run([require_binary("pdfsig", "poppler-utils"), "-nssdir", nss_db, "-no-ocsp", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    blocks = re.split(r"^Signature #\d+:$", result.stdout, flags=re.M)[1:]
    return [dict(re.findall(r"^[ \t]+- ([^:\n]+): (.*)$", block, flags=re.M)) for block in blocks]


def _qpdf_check(path: Path) -> None:
    result = subprocess.run([require_binary("qpdf", "qpdf"), "--check", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No syntax or stream encoding errors found" in result.stdout


def test_personal_b_lta_signature_after_totp_login_is_valid_for_pyhanko_pdfsig_and_qpdf(api: SigningAPI) -> None:
    before = api.rows()
    response = api.client.post(
        "/api/v1/signatures/pdf", headers=api.strong(),
        **_pdf_upload(minimal_pdf(), level="B-LTA", reason="同意发布", location="北京", page="1",
                      rect="330,620,560,740", text="{signer}\n{time}"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    signed = response.content
    assert api.rows() == before + 1

    root = asn1(_root(api))
    reader = PdfFileReader(io.BytesIO(signed))
    signature = reader.embedded_signatures[0]
    status = validate_pdf_signature(signature, ValidationContext(trust_roots=[root], allow_fetching=False))
    assert status.bottom_line and status.intact and status.valid and status.trusted, status.pretty_print_details()
    result = asyncio.run(ades_lta_validation(signature, _lta_spec(root)))
    assert result.ades_subindic is AdESPassed.OK, result.failure_msg

    path = api.directory / "personal.pdf"
    path.write_bytes(signed)
    _qpdf_check(path)
    nss_db = make_nss_db(api.directory / "nss", api.root_pem())
    first = _pdfsig(nss_db, path)[0]
    assert first["Signature Validation"] == "Signature is Valid."
    assert first["Certificate Validation"] == "Certificate is Trusted."
    assert first["Signer Certificate Common Name"] == "zhangwei"

    tampered = bytearray(signed)
    tampered[tampered.index(DOCUMENT_MARKER)] ^= 0x01
    bad = api.directory / "personal-tampered.pdf"
    bad.write_bytes(bytes(tampered))
    assert _pdfsig(nss_db, bad)[0]["Signature Validation"] != "Signature is Valid."
    broken = validate_pdf_signature(PdfFileReader(io.BytesIO(bytes(tampered))).embedded_signatures[0],
                                    ValidationContext(trust_roots=[root], allow_fetching=False))
    assert not broken.intact

    # The record and its audit record: who signed, with which key, after which login.
    listed = api.client.get("/api/v1/signatures", params={"signatory": "zhangwei"}, headers=api.robot).json()
    record = listed["items"][-1]
    assert record["kind"] == "pdf" and record["level"] == "B-LTA" and record["requester"] == "user:zhangwei"
    assert record["output_kept"] is False
    (audited,) = [r for r in api.audit_actions("signature.pdf") if r.target == f"signature:{record['id']}"]
    details = json.loads(audited.details)
    assert "otp" in details["amr"] and details["auth_time"] and details["output_sha256"] == record["output_sha256"]

    # The report of our own verification endpoint agrees.
    report = api.client.post("/api/v1/signatures/verify", headers=api.robot,
                             files={"file": ("signed.pdf", signed, "application/pdf")}).json()
    assert report["all_ok"] is True
    assert [s["level"] for s in report["signatures"]][0] == "B-LTA"
    assert report["signatures"][0]["signer"]["subject"].endswith("zhangwei")


def _root(api: SigningAPI) -> Any:
    (root,) = [c for c in api.platform.services["ca"].list_cas() if c.is_root]
    return root.certificate


def test_personal_signature_needs_a_recent_second_factor(api: SigningAPI) -> None:
    before, audited = api.rows(), len(api.audit_actions("signature.pdf"))
    weak = api.client.post("/api/v1/signatures/pdf", headers=_password_only(api), **_pdf_upload(minimal_pdf()))
    assert (weak.status_code, weak.json()["code"]) == (401, "auth.step_up_required")
    stale = api.strong()
    api.clock.advance(seconds=api.platform.settings.signing.step_up_max_age_seconds + 1)
    old = api.client.post("/api/v1/signatures/pdf", headers=stale, **_pdf_upload(minimal_pdf()))
    assert old.status_code == 401 and old.json()["code"] in ("auth.step_up_required", "auth.unauthenticated")
    token = api.client.post("/api/v1/signatures/pdf", headers=api.robot, **_pdf_upload(minimal_pdf()))
    assert (token.status_code, token.json()["code"]) == (403, "auth.forbidden")
    assert (api.rows(), len(api.audit_actions("signature.pdf"))) == (before, audited)


def _password_only(api: SigningAPI) -> dict[str, str]:
    # lisi has no second factor: the password alone gives a token without "otp" in amr.
    return api.login("lisi")


def test_seal_signature_follows_the_seal_rule(api: SigningAPI) -> None:
    before = api.rows()
    allowed = api.client.post("/api/v1/signatures/pdf", headers=api.robot,
                              **_pdf_upload(minimal_pdf(), seal="office", level="B-T"))
    assert allowed.status_code == 200, allowed.text
    assert api.rows() == before + 1
    denied_before = len([r for r in api.audit_actions("signature.seal_use") if r.outcome == "denied"])
    for headers, seal in ((api.robot, "finance"), (api.login("lisi"), "office"), (api.robot, "no-such-seal")):
        refused = api.client.post("/api/v1/signatures/pdf", headers=headers, **_pdf_upload(minimal_pdf(), seal=seal))
        assert (refused.status_code, refused.json()["code"]) == (403, "signing.seal_not_allowed"), seal
    assert api.rows() == before + 1
    denied = [r for r in api.audit_actions("signature.seal_use") if r.outcome == "denied"]
    assert len(denied) == denied_before + 3
    report = api.client.post("/api/v1/signatures/verify", headers=api.robot,
                             files={"file": ("s.pdf", allowed.content, "application/pdf")}).json()
    (entry,) = report["signatures"]
    assert entry["ok"] and entry["level"] == "B-T" and "某某县人民政府电子印章" in entry["signer"]["subject"]


def test_cms_signature_is_accepted_by_openssl(api: SigningAPI) -> None:
    content = "关于印发年度工作计划的通知\n".encode() * 100
    response = api.client.post("/api/v1/signatures/cms", headers=api.robot,
                               files={"file": ("notice.txt", content, "text/plain")},
                               data={"seal": "office", "level": "B-T"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pkcs7-signature"
    (api.directory / "notice.txt").write_bytes(content)
    (api.directory / "notice.p7s").write_bytes(response.content)
    (api.directory / "root.pem").write_bytes(api.root_pem())
    result = subprocess.run(
        [require_binary("openssl", "openssl"), "cms", "-verify", "-binary", "-inform", "DER",
         "-in", str(api.directory / "notice.p7s"), "-content", str(api.directory / "notice.txt"),
         "-CAfile", str(api.directory / "root.pem"), "-out", "/dev/null"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and "Verification successful" in result.stderr, result.stderr
    report = api.client.post("/api/v1/signatures/verify", headers=api.robot,
                             files={"file": ("notice.p7s", response.content, "application/pkcs7-signature"),
                                    "content": ("notice.txt", content, "text/plain")}).json()
    assert report["document"] == "cms" and report["all_ok"] and report["signatures"][0]["level"] == "B-T"
    changed = api.client.post("/api/v1/signatures/verify", headers=api.robot,
                              files={"file": ("notice.p7s", response.content, "application/pkcs7-signature"),
                                     "content": ("notice.txt", content + b"x", "text/plain")}).json()
    assert changed["all_ok"] is False and changed["signatures"][0]["intact"] is False
    assert changed["signatures"][0]["valid"] is False  # a signature over changed content is never "valid"


def test_broken_encrypted_and_oversized_documents_are_refused_with_their_codes(api: SigningAPI) -> None:
    before, audit_before = api.rows(), len(api.audit_actions("signature.pdf"))
    plain = api.directory / "plain.pdf"
    plain.write_bytes(minimal_pdf())
    encrypted = api.directory / "encrypted.pdf"
    subprocess.run([require_binary("qpdf", "qpdf"), "--encrypt", "user", "owner", "256", "--", str(plain),
                    str(encrypted)], check=True, capture_output=True)
    cases = [
        (encrypted.read_bytes(), 400, "signing.pdf_encrypted"),
        (b"this is not a PDF at all" * 10, 400, "signing.pdf_invalid"),
        (minimal_pdf()[:400], 400, "signing.pdf_invalid"),
        (minimal_pdf(pages=5), 413, "signing.pdf_too_many_pages"),
    ]
    settings = api.platform.settings.signing
    settings.max_pages = 3
    try:
        for data, status, code in cases:
            response = api.client.post("/api/v1/signatures/pdf", headers=api.robot,
                                       **_pdf_upload(data, seal="office", level="B-T"))
            assert (response.status_code, response.json()["code"]) == (status, code)
            stamped = api.client.post("/api/v1/timestamps/pdf", headers=api.robot,
                                      files={"file": ("d.pdf", data, "application/pdf")})
            assert (stamped.status_code, stamped.json()["code"]) == (status, code)
        settings.max_upload_bytes = 2048
        large = api.client.post("/api/v1/signatures/pdf", headers=api.robot,
                                **_pdf_upload(minimal_pdf(pages=30), seal="office"))
        assert large.status_code == 413 and large.json()["code"] in ("signing.pdf_too_large",
                                                                     "signing.content_too_large")
    finally:
        settings.max_pages = 2000
        settings.max_upload_bytes = 20 * 1024 * 1024
    assert (api.rows(), len(api.audit_actions("signature.pdf"))) == (before, audit_before)


def test_document_timestamp_and_listing_with_cursor(api: SigningAPI) -> None:
    before = api.rows()
    response = api.client.post("/api/v1/timestamps/pdf", headers=api.robot,
                               files={"file": ("d.pdf", minimal_pdf(), "application/pdf")})
    assert response.status_code == 200, response.text
    path = api.directory / "timestamped.pdf"
    path.write_bytes(response.content)
    _qpdf_check(path)
    report = api.client.post("/api/v1/signatures/verify", params={"etsi": "true"}, headers=api.robot,
                             files={"file": ("t.pdf", response.content, "application/pdf")}).json()
    (entry,) = report["signatures"]
    assert entry["kind"] == "document_timestamp" and entry["valid"] and entry["trusted"]
    assert api.rows() == before + 1

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get("/api/v1/signatures", params=params, headers=api.robot).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == api.rows()
    kinds = api.client.get("/api/v1/signatures", params={"kind": "doc-timestamp"}, headers=api.robot).json()
    assert kinds["items"][-1]["requester"] == "token:robot"
    assert api.client.get("/api/v1/signatures", params={"cursor": "!!"}, headers=api.robot).json()["code"] == (
        "request.invalid")


def test_every_signature_has_an_audit_record_and_the_audit_chain_verifies(api: SigningAPI) -> None:
    records = api.client.get("/api/v1/signatures", params={"limit": 500}, headers=api.robot).json()["items"]
    assert records
    targets = {r.target for action in ("signature.pdf", "signature.cms", "signature.doc_timestamp")
               for r in api.audit_actions(action)}
    assert {f"signature:{r['id']}" for r in records} <= targets
    audit = api.platform.require_audit()
    with api.platform.transaction() as session:
        audit.verify(session)

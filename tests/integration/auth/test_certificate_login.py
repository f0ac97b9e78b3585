"""Client-certificate login through a TLS proxy's header: our CA, bound to a user, valid, not revoked."""

from __future__ import annotations

import datetime as dt
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select

from ca.service import CAService, IssueRequest
from core.store.models import AuditRecordRow
from tests.integration.auth.conftest import PROXY, AuthPlatform

HEADER = "X-SSL-Client-Cert"


def _csr(common_name: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(f"{common_name}@example.gov.cn")]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), key


def _issue(ca: CAService, login: str | None) -> tuple[int, str]:
    csr, _ = _csr(login or "anonymous")
    owner = f"user:{login}" if login else None
    result = ca.issue(IssueRequest(profile="person-auth", csr=csr, owner=owner), actor="test")
    pem = result.certificate.certificate.public_bytes(serialization.Encoding.PEM).decode()
    return result.certificate.id, urllib.parse.quote(pem, safe="")  # as nginx $ssl_client_escaped_cert


def _self_signed() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zhangwei")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256())
    )
    return urllib.parse.quote(certificate.public_bytes(serialization.Encoding.PEM).decode(), safe="")


def test_certificate_login_from_a_trusted_proxy(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    ca: CAService = auth_platform.platform.services["ca"]
    certificate_id, escaped = _issue(ca, "zhangwei")
    app = auth_platform.client.app
    with TestClient(app, client=PROXY) as proxy, TestClient(app, client=("192.0.2.7", 1234)) as direct:
        response = proxy.post("/api/v1/auth/login", headers={HEADER: escaped})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["amr"] == ["x509"]
        assert proxy.get("/api/v1/audit", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code \
            == 200
        # The same header from a peer that is not a trusted proxy is ignored.
        ignored = direct.post("/api/v1/auth/login", headers={HEADER: escaped})
        assert (ignored.status_code, ignored.json()["code"]) == (401, "auth.unauthenticated")
        # Not ours, not bound to a user, garbage: the same refusal as a wrong password.
        _, unbound = _issue(ca, None)
        for header in (_self_signed(), unbound, "not%20a%20certificate"):
            refused = proxy.post("/api/v1/auth/login", headers={HEADER: header})
            assert (refused.status_code, refused.json()["code"]) == (401, "directory.invalid_credentials")
        ca.revoke(certificate_id, actor="test", reason="keyCompromise")
        revoked = proxy.post("/api/v1/auth/login", headers={HEADER: escaped})
        assert (revoked.status_code, revoked.json()["code"]) == (401, "directory.invalid_credentials")
        with auth_platform.platform.transaction() as session:
            last = session.scalars(select(AuditRecordRow).where(AuditRecordRow.action == "auth.login")
                                   .order_by(AuditRecordRow.sequence.desc())).first()
        assert last is not None and last.outcome == "failure" and '"invalid:revoked"' in last.details
        # A disabled user cannot log in with a good certificate either.
        _, second = _issue(ca, "zhangwei")
        assert proxy.post("/api/v1/auth/login", headers={HEADER: second}).status_code == 200
        auth_platform.directory.disable_user("test", "zhangwei")
        assert proxy.post("/api/v1/auth/login", headers={HEADER: second}).status_code == 401

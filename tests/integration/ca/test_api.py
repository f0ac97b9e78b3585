"""The CA's REST API and protocol endpoints: issuance, search, renewal, revocation, validation, bad input."""

from __future__ import annotations

import base64
import datetime as dt
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus, load_der_ocsp_response
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, create_api_token, initialise, open_platform
from tests.helpers import make_settings
from tests.integration.ca.conftest import PROFILE_REQUESTS, make_csr, make_key, table_counts


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    settings = make_settings(tmp_path_factory.mktemp("ca-api") / "var")
    initialise(settings)
    opened = open_platform(settings)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.settings, platform)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"
        yield test_client


def issue(client: TestClient, profile: str = "server-tls", **body) -> dict:
    if "csr" not in body and "key" not in body:
        csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
        body["csr"] = csr.decode()
    response = client.post("/api/v1/certificates", json={"profile": profile, **body})
    assert response.status_code == 201, response.text
    return response.json()


def ocsp_der(certificate: x509.Certificate, issuer: x509.Certificate, nonce: bool = False) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"\x42" * 20), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def certificate_of(document: dict) -> x509.Certificate:
    return x509.load_pem_x509_certificate(document["certificate"]["certificate_pem"].encode())


def issuing_certificate(client: TestClient) -> x509.Certificate:
    return x509.load_der_x509_certificate(client.get("/ca/issuing.crt").content)


# -- CAs ------------------------------------------------------------------------------------------------


def test_cas_are_listed_and_their_certificates_served_publicly(client: TestClient) -> None:
    cas = {ca["name"]: ca for ca in client.get("/api/v1/cas").json()}
    assert set(cas) >= {"root", "issuing"}
    assert cas["issuing"]["parent"] == "root" and cas["issuing"]["ocsp_responder"] is not None
    anonymous = TestClient(client.app)
    der = anonymous.get("/ca/issuing.crt")
    assert der.status_code == 200 and der.headers["content-type"] == "application/pkix-cert"
    pem = anonymous.get("/ca/issuing.pem")
    assert x509.load_pem_x509_certificate(pem.content) == x509.load_der_x509_certificate(der.content)
    assert cas["issuing"]["fingerprint_sha256"] == x509.load_der_x509_certificate(der.content).fingerprint(
        hashes.SHA256()).hex()
    missing = anonymous.get("/ca/nope.crt")
    assert missing.status_code == 404 and missing.json()["code"] == "ca.unknown_ca"


def test_sub_ca_is_created_over_the_api_with_constraints(client: TestClient, platform: Platform) -> None:
    before = table_counts(platform)
    response = client.post("/api/v1/cas", json={"name": "dept-health", "parent": "root",
                                                 "permitted_dns": ["health.example.gov.cn"]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["parent"] == "root" and body["path_length"] == 0
    assert body["crl_url"].endswith("/crl/dept-health.crl")
    again = client.post("/api/v1/cas", json={"name": "dept-health"})
    assert again.status_code == 409 and again.json()["code"] == "ca.duplicate_name"
    bad = client.post("/api/v1/cas", json={"name": "x", "parent": "issuing"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "ca.profile_violation" and bad.json()["rule"] == "path_length"
    # The CA certificate, its responder and the audit records, nothing from the refused requests.
    after = table_counts(platform)
    assert after[0] == before[0] + 2
    crl = client.get("/crl/dept-health.crl")
    assert crl.status_code == 200 and crl.headers["content-type"] == "application/pkix-crl"


# -- issuance -------------------------------------------------------------------------------------------


def test_issuing_from_a_der_csr_uses_its_subject_and_names(client: TestClient) -> None:
    csr, _ = make_csr("www.example.gov.cn", dns=("www.example.gov.cn", "example.gov.cn"))
    der = x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER)
    body = issue(client, csr=base64.b64encode(der).decode())
    certificate = certificate_of(body)
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["www.example.gov.cn", "example.gov.cn"]
    chain = x509.load_pem_x509_certificates(body["chain_pem"].encode())
    assert [c.subject.rfc4514_string() for c in chain] == ["CN=Hengxin Issuing CA,O=Hengxin,C=CN",
                                                            "CN=Hengxin Root CA,O=Hengxin,C=CN"]
    certificate.verify_directly_issued_by(chain[0])
    urls = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert urls[0].full_name[0].value == "http://127.0.0.1:8000/crl/issuing.crl"


def test_server_generated_key_comes_back_once_as_pkcs12(client: TestClient, platform: Platform) -> None:
    body = issue(client, "person-sign", key={"mode": "server", "pkcs12_password": "correct horse battery"},
                 subject={"CN": "李娜"}, sans={"email": ["li.na@example.gov.cn"]})
    blob = base64.b64decode(body["pkcs12_base64"])
    key, certificate, extra = pkcs12.load_key_and_certificates(blob, b"correct horse battery")
    assert certificate == certificate_of(body) and len(extra) == 2
    assert key.public_key() == certificate.public_key()
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(blob, b"wrong password here")
    fetched = client.get(f"/api/v1/certificates/{body['certificate']['id']}").json()
    assert "pkcs12" not in str(fetched)
    weak = client.post("/api/v1/certificates", json={"profile": "person-sign", "subject": {"CN": "x"},
                                                     "key": {"mode": "server", "pkcs12_password": "short"}})
    assert weak.status_code == 400 and weak.json()["code"] == "ca.pkcs12_password_invalid"


def test_custodial_key_is_kept_for_its_owner(client: TestClient, platform: Platform) -> None:
    body = issue(client, "person-sign", key={"mode": "custodial", "owner": "user:wangfang"}, subject={"CN": "王芳"})
    info = body["certificate"]
    assert info["owner"] == "user:wangfang" and info["key_mode"] == "custodial" and body["pkcs12_base64"] is None
    assert platform.keystore.public_key(info["key_id"]) == certificate_of(body).public_key()
    found = client.get("/api/v1/certificates", params={"owner": "user:wangfang"}).json()["items"]
    assert [item["id"] for item in found] == [info["id"]]


def test_certificates_are_fetched_by_id_or_serial_and_searched_with_a_cursor(client: TestClient) -> None:
    issued = [issue(client, "server-tls", csr=make_csr(f"s{i}.search.gov.cn", dns=(f"s{i}.search.gov.cn",))[0]
                    .decode())["certificate"] for i in range(5)]
    by_id = client.get(f"/api/v1/certificates/{issued[0]['id']}").json()
    by_serial = client.get(f"/api/v1/certificates/{issued[0]['serial']}").json()
    assert by_id == by_serial and by_id["serial"] == issued[0]["serial"]
    seen, cursor = [], None
    while True:
        params = {"subject": "SEARCH.gov.cn", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/certificates", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c["id"] for c in issued]
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).isoformat()
    expiring = client.get("/api/v1/certificates", params={"expires_before": soon, "profile": "server-tls"}).json()
    assert {c["id"] for c in issued} <= {item["id"] for item in expiring["items"]} | set()
    serial = client.get("/api/v1/certificates", params={"serial": issued[1]["serial"].upper()}).json()
    assert [item["id"] for item in serial["items"]] == [issued[1]["id"]]
    missing = client.get("/api/v1/certificates/123456789")
    assert missing.status_code == 404 and missing.json()["code"] == "ca.certificate_not_found"


def test_renew_rekey_revoke_and_release_over_the_api(client: TestClient) -> None:
    original = issue(client)["certificate"]
    renewed = client.post(f"/api/v1/certificates/{original['id']}/renew", json={})
    assert renewed.status_code == 201 and renewed.json()["certificate"]["renewal_of"] == original["id"]
    csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    rekeyed = client.post(f"/api/v1/certificates/{original['id']}/rekey", json={"csr": csr.decode()})
    assert rekeyed.status_code == 201
    missing_csr = client.post(f"/api/v1/certificates/{original['id']}/rekey", json={})
    assert missing_csr.status_code == 400 and missing_csr.json()["code"] == "ca.invalid_request"

    issuer = issuing_certificate(client)
    leaf = x509.load_pem_x509_certificate(original["certificate_pem"].encode())
    held = client.post(f"/api/v1/certificates/{original['serial']}/revoke", json={"reason": "certificateHold"})
    assert held.status_code == 200 and held.json()["status"] == "hold"
    released = client.post(f"/api/v1/certificates/{original['id']}/release")
    assert released.status_code == 200 and released.json()["status"] == "issued"
    not_held = client.post(f"/api/v1/certificates/{original['id']}/release")
    assert not_held.status_code == 409 and not_held.json()["code"] == "ca.not_on_hold"
    revoked = client.post(f"/api/v1/certificates/{original['id']}/revoke",
                          json={"reason": "keyCompromise", "invalidity_date": "2026-01-01T00:00:00Z"})
    assert revoked.status_code == 200 and revoked.json()["revocation_reason"] == "keyCompromise"
    twice = client.post(f"/api/v1/certificates/{original['id']}/revoke", json={"reason": "superseded"})
    assert twice.status_code == 409 and twice.json()["code"] == "ca.already_revoked"
    unknown_reason = client.post(f"/api/v1/certificates/{renewed.json()['certificate']['id']}/revoke",
                                 json={"reason": "bored"})
    assert unknown_reason.status_code == 400 and unknown_reason.json()["code"] == "ca.revocation_invalid"
    # OCSP reports the revocation at once, before any CRL is rebuilt.
    response = load_der_ocsp_response(client.post("/ocsp", content=ocsp_der(leaf, issuer),
                                                  headers={"Content-Type": "application/ocsp-request"}).content)
    assert response.certificate_status is OCSPCertStatus.REVOKED


# -- OCSP and CRL endpoints -------------------------------------------------------------------------------


def test_ocsp_get_with_slashes_is_cacheable_and_nonce_requests_are_fresh(client: TestClient) -> None:
    body = issue(client)
    leaf, issuer = certificate_of(body), issuing_certificate(client)
    anonymous = TestClient(client.app)
    # Find a request whose base64 contains '/', to prove the whole remaining path is routed.
    for _ in range(50):
        der = ocsp_der(leaf, issuer)
        encoded = base64.b64encode(der).decode()
        if "/" in encoded:
            break
        leaf = certificate_of(issue(client))
    assert "/" in encoded
    first = anonymous.get("/ocsp/" + encoded)
    assert first.status_code == 200 and first.headers["content-type"] == "application/ocsp-response"
    assert "max-age=" in first.headers["cache-control"] and first.headers["etag"]
    assert load_der_ocsp_response(first.content).certificate_status is OCSPCertStatus.GOOD
    again = anonymous.get("/ocsp/" + urllib.parse.quote(encoded, safe=""))
    assert again.content == first.content  # the pre-signed response from the cache
    not_modified = anonymous.get("/ocsp/" + encoded, headers={"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304
    with_nonce = anonymous.post("/ocsp", content=ocsp_der(leaf, issuer, nonce=True))
    parsed = load_der_ocsp_response(with_nonce.content)
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x42" * 20
    assert with_nonce.content != first.content


def test_ocsp_errors_are_ocsp_responses(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    garbage = load_der_ocsp_response(anonymous.post("/ocsp", content=b"\x30\x03garbage").content)
    assert garbage.response_status is OCSPResponseStatus.MALFORMED_REQUEST
    bad_base64 = load_der_ocsp_response(anonymous.get("/ocsp/%%%not-base64!!").content)
    assert bad_base64.response_status is OCSPResponseStatus.MALFORMED_REQUEST
    leaf = certificate_of(issue(client))
    long_nonce = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuing_certificate(client), hashes.SHA1())
    long_nonce = long_nonce.add_extension(x509.OCSPNonce(b"\x01" * 33), critical=False)
    answer = anonymous.post("/ocsp", content=long_nonce.build().public_bytes(serialization.Encoding.DER))
    assert load_der_ocsp_response(answer.content).response_status is OCSPResponseStatus.MALFORMED_REQUEST
    # An issuer we do not serve.
    stranger_key = make_key()
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "stranger")])
    stranger = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(stranger_key.public_key())
                .serial_number(7).not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
                .sign(stranger_key, hashes.SHA256()))
    unauthorized = anonymous.post("/ocsp", content=ocsp_der(stranger, stranger))
    assert load_der_ocsp_response(unauthorized.content).response_status is OCSPResponseStatus.UNAUTHORIZED


def test_crl_is_served_in_der_and_pem_and_published_on_request(client: TestClient) -> None:
    body = issue(client)
    client.post(f"/api/v1/certificates/{body['certificate']['id']}/revoke", json={"reason": "superseded"})
    published = client.post("/api/v1/cas/issuing/crl")
    assert published.status_code == 200
    anonymous = TestClient(client.app)
    der = anonymous.get("/crl/issuing.crl")
    assert der.headers["content-type"] == "application/pkix-crl" and "max-age" in der.headers["cache-control"]
    crl = x509.load_der_x509_crl(der.content)
    assert crl.get_revoked_certificate_by_serial_number(int(body["certificate"]["serial"], 16)) is not None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == published.json()["crl_number"]
    pem = anonymous.get("/crl/issuing.pem")
    assert x509.load_pem_x509_crl(pem.content) == crl
    missing = anonymous.get("/crl/nope.crl")
    assert missing.status_code == 404 and missing.json()["code"] == "ca.unknown_ca"


# -- validation ---------------------------------------------------------------------------------------------


def test_validation_reports_path_usage_and_live_revocation(client: TestClient) -> None:
    body = issue(client)
    pem = body["certificate"]["certificate_pem"]
    good = client.post("/api/v1/certificates/validate", json={"certificate": pem, "purpose": "server-auth"}).json()
    assert good["valid"] and good["code"] == "valid"
    assert good["trust_root"]["ca"] == "root" and [e["ca"] for e in good["path"]] == [None, "issuing", "root"]
    assert good["key_usage"]["satisfied"] and good["revocation"] == {"status": "good", "source": "database",
                                                                     "revoked_at": None, "reason": None}
    wrong_purpose = client.post("/api/v1/certificates/validate",
                                json={"certificate": pem, "purpose": "timestamping"}).json()
    assert not wrong_purpose["valid"] and wrong_purpose["code"] == "key_usage"
    client.post(f"/api/v1/certificates/{body['certificate']['id']}/revoke", json={"reason": "keyCompromise"})
    revoked = client.post("/api/v1/certificates/validate", json={"certificate": pem}).json()
    assert not revoked["valid"] and revoked["code"] == "revoked"
    assert revoked["revocation"]["status"] == "revoked" and revoked["revocation"]["reason"] == "keyCompromise"
    past = client.post("/api/v1/certificates/validate",
                       json={"certificate": pem, "validation_time": body["certificate"]["not_after"]}).json()
    assert past["code"] in {"revoked", "expired"} or not past["valid"]
    key = make_key()
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "self-signed")])
    foreign = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(9).not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    stranger = client.post("/api/v1/certificates/validate", json={"certificate": foreign}).json()
    assert not stranger["valid"] and stranger["code"] == "no_path" and stranger["trust_root"] is None
    garbage = client.post("/api/v1/certificates/validate", json={"certificate": "bm90IGEgY2VydGlmaWNhdGU="})
    assert garbage.status_code == 400 and garbage.json()["code"] == "ca.certificate_invalid"


# -- bad input ----------------------------------------------------------------------------------------------


def _bad_signature_csr() -> str:
    csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    der = bytearray(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    return base64.b64encode(bytes(der)).decode()


def _ed25519_csr() -> str:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return make_csr("portal.example.gov.cn", key=ed25519.Ed25519PrivateKey.generate(),
                    dns=("portal.example.gov.cn",))[0].decode()


BAD_REQUESTS = {
    "garbage DER": ({"profile": "server-tls", "csr": base64.b64encode(b"\x30\x82\x01\x00garbage").decode()},
                    400, "ca.csr_invalid"),
    "CSR with a bad signature": ({"profile": "server-tls", "csr": "SIGNATURE"}, 400, "ca.csr_signature_invalid"),
    "key type the profile forbids": ({"profile": "server-tls", "csr": "ED25519"}, 400, "ca.profile_violation"),
    "unknown CA": ({"profile": "server-tls", "ca": "nope", "csr": "GOOD"}, 404, "ca.unknown_ca"),
    "unknown profile": ({"profile": "nope", "csr": "GOOD"}, 404, "ca.unknown_profile"),
    "CSR and key both": ({"profile": "server-tls", "csr": "GOOD", "key": {"mode": "custodial", "owner": "user:a"}},
                         400, "ca.invalid_request"),
    "SAN outside the profile": ({"profile": "server-tls", "csr": "GOOD", "sans": {"email": ["a@example.gov.cn"]}},
                                400, "ca.profile_violation"),
    "unknown field": ({"profile": "server-tls", "csr": "GOOD", "colour": "blue"}, 400, "request.validation_failed"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_issue_requests_get_their_own_problem_code_and_write_nothing(
    client: TestClient, platform: Platform, case: str
) -> None:
    body, status, code = BAD_REQUESTS[case]
    replacements = {
        "SIGNATURE": _bad_signature_csr(),
        "ED25519": _ed25519_csr(),
        "GOOD": make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))[0].decode(),
    }
    body = {**body, "csr": replacements.get(body["csr"], body["csr"])}
    before = table_counts(platform)
    keys_before = len(platform.keystore.list_keys())
    response = client.post("/api/v1/certificates", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    if case == "key type the profile forbids":
        assert response.json()["rule"] == "key_type"
    assert table_counts(platform) == before
    assert len(platform.keystore.list_keys()) == keys_before


def test_a_10_mb_body_is_refused_before_it_is_read(client: TestClient, platform: Platform) -> None:
    before = table_counts(platform)
    payload = b'{"profile": "server-tls", "csr": "' + b"A" * (10 * 1024 * 1024) + b'"}'
    response = client.post("/api/v1/certificates", content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "request.body_too_large"
    assert table_counts(platform) == before


def test_permissions_are_enforced(client: TestClient, platform: Platform) -> None:
    reader = create_api_token(platform, "ca-reader", "certificates.read ca.read")
    headers = {"Authorization": f"Bearer {reader}"}
    anonymous = TestClient(client.app)
    assert anonymous.get("/api/v1/certificates").status_code == 401
    assert anonymous.get("/api/v1/cas").status_code == 401
    assert anonymous.get("/crl/issuing.crl").status_code == 200  # public
    csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    denied = anonymous.post("/api/v1/certificates", json={"profile": "server-tls", "csr": csr.decode()},
                            headers=headers)
    assert denied.status_code == 403 and denied.json()["permission"] == "certificates.issue"
    assert anonymous.get("/api/v1/certificates", headers=headers).status_code == 200
    revoke = anonymous.post("/api/v1/certificates/1/revoke", json={}, headers=headers)
    assert revoke.status_code == 403 and revoke.json()["permission"] == "certificates.revoke"
    # A delegated OCSP responder certificate speaks for the CA: certificates.issue is not enough.
    issuer = create_api_token(platform, "issuer-only", "certificates.issue")
    before = table_counts(platform)
    refused = anonymous.post("/api/v1/certificates", headers={"Authorization": f"Bearer {issuer}"}, json={
        "profile": "ocsp-responder", "key": {"mode": "custodial", "owner": "platform:x"},
        **PROFILE_REQUESTS["ocsp-responder"]})
    assert refused.status_code == 403 and refused.json()["code"] == "ca.profile_restricted"
    assert table_counts(platform) == before


def test_every_end_entity_profile_can_be_issued(client: TestClient, tmp_path: Path) -> None:
    for profile, request in PROFILE_REQUESTS.items():
        body = issue(client, profile, key={"mode": "custodial", "owner": "platform:test"}, **request)
        assert body["certificate"]["profile"] == profile

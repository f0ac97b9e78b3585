"""Certificate requests through the API: four eyes, self-approval, directory binding, revocation on disable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from api.platform import ADMIN_TOKEN_SECRET
from ca.ra import CertificateRequestRow
from core.store.models import AuditRecordRow
from tests.integration.ra.conftest import RAPlatform, make_csr

URL = "/api/v1/certificate-requests"
SEAL_SUBJECT = {"CN": "东城县人民政府电子印章", "O": "东城县人民政府"}


def _issue_audit(ra: RAPlatform, certificate_id: int) -> dict[str, Any]:
    with ra.platform.transaction() as session:
        records = ra.platform.require_audit().records(session, action="certificate.issue")
    matching = [r for r in records if r.details.get("id") == certificate_id]
    assert len(matching) == 1
    return dict(matching[0].details)


def _state(ra: RAPlatform) -> tuple[int, int]:
    with ra.platform.transaction() as session:
        return (session.scalar(select(func.count()).select_from(CertificateRequestRow)) or 0,
                session.scalar(select(func.count()).select_from(AuditRecordRow)) or 0)


def _ocsp_status(ra: RAPlatform, certificate_id: int) -> str:
    info = ra.ca.get_certificate(certificate_id)
    certificate = x509.load_der_x509_certificate(info.der)
    issuer = ra.ca.get_ca(info.ca).certificate
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
    from cryptography.hazmat.primitives.serialization import Encoding

    answer = ra.ca.ocsp_respond(request.public_bytes(Encoding.DER))
    parsed = ocsp.load_der_ocsp_response(answer.der)
    assert parsed.serial_number == certificate.serial_number
    return parsed.certificate_status.name.lower()


def test_seal_request_needs_two_distinct_approvers_and_the_issue_record_names_both(ra_platform: RAPlatform) -> None:
    ra = ra_platform
    ra.person("alice", "李丽")
    ra.person("bob", "王波", "certificate-operator")
    ra.person("carol", "陈卡", "certificate-operator")
    submitted = ra.client.post(URL, headers=ra.bearer("alice"), json={
        "profile": "organisation-seal", "reason": "县政府公文电子印章", "key_mode": "custodial",
        "subject_attributes": SEAL_SUBJECT})
    assert submitted.status_code == 201, submitted.text
    request = submitted.json()
    assert (request["status"], request["approval_rule"], request["approvals_required"]) == ("pending", "two", 2)
    assert request["subject"] == "user:alice"
    bob = ra.bearer("bob")
    first = ra.client.post(f"{URL}/{request['id']}/approve", headers=bob)
    assert first.status_code == 200, first.text
    assert (first.json()["status"], len(first.json()["approvals"])) == ("pending", 1)
    again = ra.client.post(f"{URL}/{request['id']}/approve", headers=bob)
    assert (again.status_code, again.json()["code"]) == (409, "ra.duplicate_approver")
    assert again.headers["content-type"] == "application/problem+json"
    second = ra.client.post(f"{URL}/{request['id']}/approve", headers=ra.bearer("carol"))
    assert second.status_code == 200, second.text
    issued = second.json()
    assert issued["status"] == "issued" and issued["certificate_id"] is not None
    assert [a["approver"] for a in issued["approvals"]] == ["user:bob", "user:carol"]
    certificate = ra.ca.get_certificate(issued["certificate_id"])
    assert (certificate.profile, certificate.owner, certificate.status) == ("organisation-seal", "user:alice", "issued")
    details = _issue_audit(ra, issued["certificate_id"])
    assert details["approvers"] == ["user:bob", "user:carol"]
    assert details["request_id"] == request["id"] and details["requested_by"] == "user:alice"
    names = [a.name for a in ra.platform.alerts.history]
    assert {"ra.request_waiting", "ra.request_approved", "ra.certificate_issued"} <= set(names)
    assert all(a.severity == "info" for a in ra.platform.alerts.history if a.name.startswith("ra."))


def test_nobody_approves_their_own_request_or_one_for_themself(ra_platform: RAPlatform) -> None:
    ra = ra_platform
    ra.person("bob", "王波", "certificate-operator")
    ra.person("carol", "陈卡", "certificate-operator")
    bob = ra.bearer("bob")
    own = ra.client.post(URL, headers=bob, json={"profile": "person-sign", "reason": "签署公文",
                                                  "csr": make_csr("王波")}).json()
    refused = ra.client.post(f"{URL}/{own['id']}/approve", headers=bob)
    assert (refused.status_code, refused.json()["code"]) == (409, "ra.self_approval")
    # carol asks on bob's behalf: bob still may not approve a certificate for himself.
    behalf = ra.client.post(URL, headers=ra.bearer("carol"), json={
        "profile": "person-sign", "subject": "user:bob", "reason": "代为申请", "csr": make_csr("王波")}).json()
    refused = ra.client.post(f"{URL}/{behalf['id']}/approve", headers=bob)
    assert (refused.status_code, refused.json()["code"]) == (409, "ra.self_approval")
    approved = ra.client.post(f"{URL}/{own['id']}/approve", headers=ra.bearer("carol"))
    assert approved.json()["status"] == "issued"


def test_person_certificate_takes_the_directory_subject_not_the_csr_free_text(ra_platform: RAPlatform) -> None:
    ra = ra_platform
    ra.person("zhangwei", "张伟")
    ra.person("bob", "王波", "certificate-operator")
    csr = make_csr("Mallory Free Text", email="mallory@evil.example", organisation="Evil Corp")
    submitted = ra.client.post(URL, headers=ra.bearer("zhangwei"), json={
        "profile": "person-sign", "reason": "签署公文", "csr": csr})
    assert submitted.status_code == 201, submitted.text
    issued = ra.client.post(f"{URL}/{submitted.json()['id']}/approve", headers=ra.bearer("bob")).json()
    certificate = x509.load_der_x509_certificate(ra.ca.get_certificate(issued["certificate_id"]).der)
    subject = certificate.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["张伟"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["东城县人民政府"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == ["财政局", "预算科"]
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.RFC822Name) == ["zhangwei@czj.gov.example"]
    assert "Mallory" not in subject.rfc4514_string() and "Evil" not in subject.rfc4514_string()


def test_person_auth_is_issued_at_once_for_an_active_user(ra_platform: RAPlatform) -> None:
    ra = ra_platform
    ra.person("zhangwei", "张伟")
    response = ra.client.post(URL, headers=ra.bearer("zhangwei"), json={
        "profile": "person-auth", "reason": "登录办公系统", "csr": make_csr("whatever")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["approval_rule"], body["approvals"]) == ("issued", "auto", [])
    assert _issue_audit(ra, body["certificate_id"])["approvers"] == []


def test_refuse_mismatch_refuses_a_csr_whose_subject_disagrees(
    ra_platform_factory: Callable[[dict[str, Any]], RAPlatform],
) -> None:
    ra = ra_platform_factory({"subject_source": "refuse_mismatch"})
    ra.person("zhangwei", "张伟")
    headers = ra.bearer("zhangwei")
    before = _state(ra)
    refused = ra.client.post(URL, headers=headers, json={
        "profile": "person-sign", "reason": "签署公文", "csr": make_csr("Mallory Free Text", organisation=None)})
    assert (refused.status_code, refused.json()["code"]) == (400, "ra.subject_mismatch")
    assert _state(ra) == before
    agreeing = ra.client.post(URL, headers=headers, json={
        "profile": "person-sign", "reason": "签署公文",
        "csr": make_csr("张伟", email="zhangwei@czj.gov.example", organisation="东城县人民政府")})
    assert agreeing.status_code == 201, agreeing.text


def test_disabling_a_user_revokes_their_certificates_and_ocsp_says_revoked(ra_platform: RAPlatform) -> None:
    ra = ra_platform
    ra.person("zhangwei", "张伟")
    ra.person("bob", "王波", "certificate-operator")
    auth = ra.client.post(URL, headers=ra.bearer("zhangwei"), json={
        "profile": "person-auth", "reason": "登录", "csr": make_csr("x")}).json()
    pending = ra.client.post(URL, headers=ra.bearer("zhangwei"), json={
        "profile": "person-sign", "reason": "签署", "csr": make_csr("x")}).json()
    assert _ocsp_status(ra, auth["certificate_id"]) == "good"
    admin = {"Authorization": f"Bearer {ra.platform.secrets.get(ADMIN_TOKEN_SECRET)}"}
    disabled = ra.client.post("/api/v1/users/zhangwei/disable", headers=admin, json={"reason": "离职"})
    assert disabled.status_code == 200, disabled.text
    info = ra.ca.get_certificate(auth["certificate_id"])
    assert (info.status, info.revocation_reason) == ("revoked", "affiliationChanged")
    assert _ocsp_status(ra, auth["certificate_id"]) == "revoked"
    cancelled = ra.client.get(f"{URL}/{pending['id']}", headers=admin).json()
    assert cancelled["status"] == "cancelled"
    # A disabled user gets no new certificate.
    refused = ra.client.post(URL, headers=admin, json={
        "profile": "person-auth", "subject": "user:zhangwei", "reason": "x", "csr": make_csr("x")})
    assert (refused.status_code, refused.json()["code"]) == (409, "ra.user_inactive")


def test_the_sweep_revokes_what_a_crash_after_disabling_left_valid(ra_platform: RAPlatform) -> None:
    from api.components.ra import sweep_disabled_users

    ra = ra_platform
    ra.person("zhangwei", "张伟")
    auth = ra.client.post(URL, headers=ra.bearer("zhangwei"), json={
        "profile": "person-auth", "reason": "登录", "csr": make_csr("x")}).json()
    # The crash: the disable commits, the listener that revokes never runs.
    directory = ra.platform.services["directory"]
    listeners = list(directory._status_listeners)
    directory._status_listeners.clear()
    try:
        admin = {"Authorization": f"Bearer {ra.platform.secrets.get(ADMIN_TOKEN_SECRET)}"}
        disabled = ra.client.post("/api/v1/users/zhangwei/disable", headers=admin, json={"reason": "离职"})
        assert disabled.status_code == 200
    finally:
        directory._status_listeners.extend(listeners)
    assert _ocsp_status(ra, auth["certificate_id"]) == "good"
    assert sweep_disabled_users(ra.platform) == [auth["certificate_id"]]
    assert _ocsp_status(ra, auth["certificate_id"]) == "revoked"
    assert sweep_disabled_users(ra.platform) == []  # idempotent


def test_bad_input_is_refused_with_a_code_and_writes_nothing(ra_platform: RAPlatform) -> None:
    ra = ra_platform
    ra.person("zhangwei", "张伟")
    operator = ra.token("ra-operator", "certificate_requests.submit certificate_requests.approve")
    cases = [
        ({"profile": "no-such", "subject": "user:zhangwei", "reason": "x", "csr": make_csr()},
         404, "ca.unknown_profile"),
        ({"profile": "person-sign", "subject": "user:nobody", "reason": "x", "csr": make_csr()},
         404, "ra.unknown_user"),
        ({"profile": "person-sign", "subject": "user:zhangwei", "reason": "x", "csr": "garbage"},
         400, "ca.csr_invalid"),
        ({"profile": "sub-ca", "subject": "user:zhangwei", "reason": "x", "key_mode": "custodial"},
         400, "ra.profile_not_requestable"),
        ({"profile": "person-sign", "subject": "zhangwei", "reason": "x", "csr": make_csr()}, 400, "request.invalid"),
        ({"profile": "person-sign", "subject": "user:zhangwei", "reason": "x", "key_mode": "csr"},
         400, "ra.invalid_request"),
        ({"profile": "person-sign", "subject": "user:zhangwei", "csr": make_csr()}, 400, "request.validation_failed"),
    ]
    before = _state(ra)
    for body, status, code in cases:
        response = ra.client.post(URL, headers=operator, json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert _state(ra) == before
    missing = ra.client.post(f"{URL}/999/approve", headers=operator)
    assert (missing.status_code, missing.json()["code"]) == (404, "ra.request_not_found")


def test_permissions_reject_cancel_and_listing(ra_platform: RAPlatform) -> None:
    ra = ra_platform
    ra.person("zhangwei", "张伟")
    ra.person("lisi", "李四")
    ra.person("bob", "王波", "certificate-operator")
    reader = ra.token("reader", "certificates.read")
    denied = ra.client.post(URL, headers=reader, json={"profile": "person-sign", "subject": "user:zhangwei",
                                                        "reason": "x", "csr": make_csr()})
    assert (denied.status_code, denied.json()["code"]) == (403, "auth.forbidden")
    zhang = ra.bearer("zhangwei")
    behalf = ra.client.post(URL, headers=zhang, json={"profile": "person-sign", "subject": "user:lisi",
                                                       "reason": "x", "csr": make_csr()})
    assert (behalf.status_code, behalf.json()["code"]) == (403, "auth.forbidden")
    submitter = ra.token("oa", "certificate_requests.submit")
    first = ra.client.post(URL, headers=submitter, json={"profile": "person-sign", "subject": "user:zhangwei",
                                                          "reason": "OA 代办", "csr": make_csr()}).json()
    assert first["requested_by"] == "token:oa"
    no_approve = ra.client.post(f"{URL}/{first['id']}/approve", headers=submitter)
    assert (no_approve.status_code, no_approve.json()["code"]) == (403, "auth.forbidden")
    bob = ra.bearer("bob")
    no_reason = ra.client.post(f"{URL}/{first['id']}/reject", headers=bob, json={})
    assert (no_reason.status_code, no_reason.json()["code"]) == (400, "ra.invalid_request")
    rejected = ra.client.post(f"{URL}/{first['id']}/reject", headers=bob, json={"reason": "材料不全"}).json()
    assert (rejected["status"], rejected["decision_reason"], rejected["decided_by"]) == (
        "rejected", "材料不全", "user:bob")
    late = ra.client.post(f"{URL}/{first['id']}/approve", headers=bob)
    assert (late.status_code, late.json()["code"]) == (409, "ra.invalid_state")
    second = ra.client.post(URL, headers=zhang, json={"profile": "person-sign", "reason": "x",
                                                       "csr": make_csr()}).json()
    lisi = ra.bearer("lisi")
    other = ra.client.post(f"{URL}/{second['id']}/cancel", headers=lisi)
    assert (other.status_code, other.json()["code"]) == (403, "ra.not_allowed")
    assert ra.client.get(URL, headers=lisi).json()["items"] == []
    cancelled = ra.client.post(f"{URL}/{second['id']}/cancel", headers=zhang).json()
    assert cancelled["status"] == "cancelled"
    mine = ra.client.get(URL, headers=zhang).json()["items"]
    assert [i["id"] for i in mine] == [first["id"], second["id"]]
    page = ra.client.get(URL, headers=bob, params={"limit": 1, "status": "rejected"}).json()
    assert [i["id"] for i in page["items"]] == [first["id"]] and page["next_cursor"] is None
    page = ra.client.get(URL, headers=bob, params={"limit": 1}).json()
    assert page["next_cursor"] is not None
    rest = ra.client.get(URL, headers=bob, params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == [second["id"]]
    assert "ra.request_rejected" in [a.name for a in ra.platform.alerts.history]


def test_an_out_of_range_request_id_is_a_validation_error_not_a_server_error(ra_platform: RAPlatform) -> None:
    admin = {"Authorization": f"Bearer {ra_platform.platform.secrets.get(ADMIN_TOKEN_SECRET)}"}
    for method, path in (("GET", f"{URL}/{2**70}"), ("POST", f"{URL}/{2**70}/reject"), ("POST", f"{URL}/0/approve")):
        response = ra_platform.client.request(method, path, headers=admin, json={"reason": "x"})
        assert (response.status_code, response.json()["code"]) == (400, "request.validation_failed"), path

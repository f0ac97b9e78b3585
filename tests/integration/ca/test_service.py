"""The CA service on SQLite and PostgreSQL: issuance, serial reservation, revocation, CRL numbering, jobs."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus, load_der_ocsp_response
from sqlalchemy import select

import ca.service as service_module
from ca.certificates import NameConstraints, new_serial
from ca.crl_publisher import LEASE_NAME
from ca.errors import ProfileViolation, UnknownProfile
from ca.models import FAILED, ISSUED, RESERVED, CertificateAuthorityRow, CertificateRow, CRLRow
from ca.profiles import SubjectAltNames
from ca.service import IssueRequest
from ca.service_errors import (
    AlreadyRevoked,
    CAInactive,
    CertificateNotIssued,
    NotOnHold,
    RevocationInvalid,
    RootNotRevocable,
    UnknownCA,
)
from core.jobs import acquire_lease, claim_run, release_lease
from core.store.models import AuditRecordRow
from tests.integration.ca.conftest import CAPlatform, make_csr


def issue_tls(env: CAPlatform, name: str = "portal.example.gov.cn", **kwargs):
    csr, key = make_csr(name, dns=(name,))
    return env.ca.issue(IssueRequest(profile="server-tls", csr=csr, **kwargs), actor="test:alice")


def issuing_row(session) -> CertificateAuthorityRow:
    return session.scalars(select(CertificateAuthorityRow).where(CertificateAuthorityRow.name == "issuing")).one()


def crl_of(env: CAPlatform, ca: str) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(env.ca.latest_crl(ca).der)


def ocsp_status(env: CAPlatform, certificate: x509.Certificate, issuer: x509.Certificate, nonce: bool = False):
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"\x01" * 16), critical=False)
    answer = env.ca.ocsp_respond(builder.build().public_bytes(serialization.Encoding.DER))
    response = load_der_ocsp_response(answer.der)
    assert response.response_status is OCSPResponseStatus.SUCCESSFUL
    return response


def test_init_creates_root_and_issuing_ca_with_responders_and_crls(ca_platform: CAPlatform) -> None:
    cas = {info.name: info for info in ca_platform.ca.list_cas()}
    assert set(cas) == {"root", "issuing"}
    root, issuing = cas["root"], cas["issuing"]
    assert root.parent is None and issuing.parent == "root"
    assert issuing.path_length == 0
    issuing.certificate.verify_directly_issued_by(root.certificate)
    for info in (root, issuing):
        assert info.ocsp_certificate is not None
        info.ocsp_certificate.verify_directly_issued_by(info.certificate)
        crl = crl_of(ca_platform, info.name)
        assert crl.is_signature_valid(info.certificate.public_key())
    # Default algorithm: ECDSA P-256.
    assert root.certificate.public_key().curve.name == "secp256r1"


def test_issuance_commits_certificate_and_audit_record_with_a_random_serial(ca_platform: CAPlatform) -> None:
    before = ca_platform.counts()
    result = issue_tls(ca_platform)
    info = result.certificate
    assert info.status == ISSUED and info.serial.bit_length() > 64
    assert info.certificate.serial_number == info.serial
    assert ca_platform.counts()[0] == before[0] + 1
    with ca_platform.platform.transaction() as session:
        row = session.get(CertificateRow, info.id)
        assert row.der == info.der and row.fingerprint_sha256 == info.fingerprint_sha256
        record = session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.sequence.desc())).first()
    assert record.action == "certificate.issue" and record.actor == "test:alice"
    assert record.target == f"certificate:issuing/{info.serial_hex}"
    assert len(result.chain) == 2


def test_serial_is_reserved_in_a_committed_row_before_signing(ca_platform: CAPlatform, monkeypatch) -> None:
    seen = []
    original = service_module.build_certificate

    def spy(profile, **kwargs):
        # Another session sees the reservation while the certificate is being signed.
        with ca_platform.platform.transaction() as session:
            row = session.scalars(select(CertificateRow).where(CertificateRow.serial == kwargs["serial"])).one()
            seen.append((row.status, row.der))
        return original(profile, **kwargs)

    monkeypatch.setattr(service_module, "build_certificate", spy)
    issue_tls(ca_platform)
    assert seen == [(RESERVED, None)]


def test_a_crash_between_reservation_and_signing_leaves_only_a_reserved_row(
    ca_platform: CAPlatform, monkeypatch
) -> None:
    def crash(*args, **kwargs):
        raise SystemExit("killed while signing")

    monkeypatch.setattr(service_module, "build_certificate", crash)
    monkeypatch.setattr(service_module.CAService, "_mark_failed", lambda self, row_id: None)  # the process died
    before = ca_platform.counts()
    with pytest.raises(SystemExit):
        issue_tls(ca_platform)
    with ca_platform.platform.transaction() as session:
        rows = session.scalars(select(CertificateRow).order_by(CertificateRow.id.desc())).all()
    newest = rows[0]
    assert newest.status == RESERVED and newest.der is None and newest.fingerprint_sha256 is None
    assert ca_platform.counts() == (before[0] + 1, before[1])  # no audit record for a certificate that never was
    # OCSP does not vouch for it.
    issuing = ca_platform.ca.get_ca("issuing")
    request = ocsp_request_for_serial(issuing.certificate, newest.serial)
    response = load_der_ocsp_response(ca_platform.ca.ocsp_respond(request).der)
    assert response.certificate_status is OCSPCertStatus.UNKNOWN


def ocsp_request_for_serial(issuer: x509.Certificate, serial: int) -> bytes:
    from ca.ocsp import CertID

    cert_id = CertID.create(issuer, serial)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        cert_id.issuer_name_hash, cert_id.issuer_key_hash, serial, hashes.SHA1()
    )
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_failed_signing_marks_the_reservation_failed(ca_platform: CAPlatform, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("HSM unplugged")

    monkeypatch.setattr(service_module, "build_certificate", broken)
    with pytest.raises(RuntimeError):
        issue_tls(ca_platform)
    with ca_platform.platform.transaction() as session:
        newest = session.scalars(select(CertificateRow).order_by(CertificateRow.id.desc())).first()
    assert newest.status == FAILED


def test_serial_collision_is_retried_with_a_new_number(ca_platform: CAPlatform, monkeypatch) -> None:
    taken = issue_tls(ca_platform, "a.example.gov.cn").certificate.serial
    fresh = new_serial()
    numbers = iter([taken, fresh])
    monkeypatch.setattr(service_module, "new_serial", lambda: next(numbers))
    info = issue_tls(ca_platform, "b.example.gov.cn").certificate
    assert info.serial == fresh


def test_every_issuing_mode_and_renewal_and_rekey(ca_platform: CAPlatform) -> None:
    service = ca_platform.ca
    server = service.issue(
        IssueRequest(profile="person-sign", key_mode="server", subject={"CN": "张伟"},
                     sans=SubjectAltNames(email=("zw@example.gov.cn",)), pkcs12_password="correct horse battery"),
        actor="test",
    )
    assert server.pkcs12 and server.certificate.key_id is None and server.certificate.key_mode == "server"
    custodial = service.issue(
        IssueRequest(profile="organisation-seal", key_mode="custodial", owner="user:zhangwei",
                     subject={"CN": "某某县人民政府电子印章", "O": "某某县人民政府"}),
        actor="test",
    )
    info = custodial.certificate
    assert info.owner == "user:zhangwei" and info.key_id
    assert ca_platform.platform.keystore.public_key(info.key_id) == info.certificate.public_key()
    renewed = service.renew(info.id, actor="test").certificate
    assert renewed.renewal_of == info.id and renewed.key_id == info.key_id
    assert renewed.certificate.public_key() == info.certificate.public_key()
    assert renewed.serial != info.serial and renewed.subject == info.subject
    rekeyed = service.rekey(info.id, actor="test").certificate
    assert rekeyed.key_id != info.key_id and rekeyed.owner == "user:zhangwei"
    csr_issued = issue_tls(ca_platform).certificate
    new_csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    rekeyed_csr = service.rekey(csr_issued.id, actor="test", csr=new_csr).certificate
    assert rekeyed_csr.certificate.public_key() != csr_issued.certificate.public_key()
    assert rekeyed_csr.subject == csr_issued.subject


def test_refused_requests_write_nothing(ca_platform: CAPlatform) -> None:
    before = ca_platform.counts()
    keys_before = len(ca_platform.platform.keystore.list_keys())
    csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    with pytest.raises(UnknownProfile):
        ca_platform.ca.issue(IssueRequest(profile="nope", csr=csr), actor="t")
    with pytest.raises(UnknownCA):
        ca_platform.ca.issue(IssueRequest(profile="server-tls", ca="nope", csr=csr), actor="t")
    with pytest.raises(ProfileViolation) as refused:
        ca_platform.ca.issue(IssueRequest(profile="server-tls", key_mode="custodial", owner="user:x",
                                          subject={"CN": "a.example.gov.cn"}), actor="t")
    assert refused.value.rule == "san_required"
    with pytest.raises(ProfileViolation) as refused:
        ca_platform.ca.issue(IssueRequest(profile="server-tls", csr=csr, validity_days=4000), actor="t")
    assert refused.value.rule == "validity"
    assert ca_platform.counts() == before
    assert len(ca_platform.platform.keystore.list_keys()) == keys_before


def test_the_sqlite_status_reader_gives_what_sqlalchemy_reads(sqlite_ca_platform: CAPlatform) -> None:
    """OCSP reads status on SQLite through a plain connection of its own; it must read what SQLAlchemy reads."""
    service = sqlite_ca_platform.ca
    responder = service.ocsp
    assert responder._sqlite is not None
    issued = issue_tls(sqlite_ca_platform).certificate
    held = issue_tls(sqlite_ca_platform).certificate
    revoked = issue_tls(sqlite_ca_platform).certificate
    service.revoke(held.id, actor="t", reason="certificateHold")
    service.revoke(revoked.id, actor="t", reason="keyCompromise")
    fast = responder._sqlite
    states = []
    for info in (issued, held, revoked):
        responder._sqlite = fast
        mine = responder._state(info.ca_id, info.serial)
        responder._sqlite = None
        theirs = responder._state(info.ca_id, info.serial)
        states.append(mine)
        assert mine == theirs
    responder._sqlite = fast
    assert [s[0] if s else None for s in states] == ["issued", "hold", "revoked"]
    assert states[2][1] == service.get_certificate(revoked.id).revoked_at and states[2][2] == "keyCompromise"
    assert states[2][1].tzinfo is not None
    assert responder._state(issued.ca_id, issued.serial + 1) is None  # unknown serial
    assert responder._state(issued.ca_id + 99, issued.serial) is None  # another CA


def test_revocation_hold_release_and_their_conflicts(ca_platform: CAPlatform) -> None:
    service = ca_platform.ca
    issuing = service.get_ca("issuing")
    info = issue_tls(ca_platform).certificate
    assert ocsp_status(ca_platform, info.certificate, issuing.certificate).certificate_status is OCSPCertStatus.GOOD
    held = service.revoke(info.serial_hex, actor="t", reason="certificateHold")
    assert held.status == "hold"
    response = ocsp_status(ca_platform, info.certificate, issuing.certificate)
    assert response.certificate_status is OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.certificate_hold
    with pytest.raises(AlreadyRevoked):
        service.revoke(info.id, actor="t", reason="certificateHold")
    released = service.release(info.id, actor="t")
    assert released.status == ISSUED and released.revoked_at is None
    assert ocsp_status(ca_platform, info.certificate, issuing.certificate).certificate_status is OCSPCertStatus.GOOD
    with pytest.raises(NotOnHold):
        service.release(info.id, actor="t")
    compromised = ca_platform.clock() - dt.timedelta(days=1)
    revoked = service.revoke(info.id, actor="t", reason="key_compromise", invalidity_date=compromised)
    assert revoked.revocation_reason == "keyCompromise"
    with pytest.raises(AlreadyRevoked) as twice:
        service.revoke(info.id, actor="t", reason="superseded")
    assert twice.value.code == "ca.already_revoked"
    response = ocsp_status(ca_platform, info.certificate, issuing.certificate, nonce=True)
    assert response.certificate_status is OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.key_compromise
    with pytest.raises(RevocationInvalid):
        service.revoke(issue_tls(ca_platform).certificate.id, actor="t", reason="removeFromCRL")
    with pytest.raises(RootNotRevocable):
        service.revoke(format(service.get_ca("root").serial, "x"), actor="t")
    with ca_platform.platform.transaction() as session:
        actions = [r.action for r in session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.sequence))]
    assert {"certificate.hold", "certificate.release", "certificate.revoke"} <= set(actions)


def test_reserved_serial_cannot_be_revoked(ca_platform: CAPlatform, monkeypatch) -> None:
    monkeypatch.setattr(service_module, "build_certificate", lambda *a, **k: (_ for _ in ()).throw(SystemExit()))
    monkeypatch.setattr(service_module.CAService, "_mark_failed", lambda self, row_id: None)
    with pytest.raises(SystemExit):
        issue_tls(ca_platform)
    with ca_platform.platform.transaction() as session:
        newest = session.scalars(select(CertificateRow).order_by(CertificateRow.id.desc())).first()
    with pytest.raises(CertificateNotIssued):
        ca_platform.ca.revoke(newest.id, actor="t")


def test_revocation_only_marks_the_crl_dirty_and_the_publisher_coalesces(ca_platform: CAPlatform) -> None:
    service, clock = ca_platform.ca, ca_platform.clock
    first = crl_of(ca_platform, "issuing")
    infos = [issue_tls(ca_platform, f"h{i}.example.gov.cn").certificate for i in range(3)]
    for info in infos:
        service.revoke(info.id, actor="t", reason="superseded")
    with ca_platform.platform.transaction() as session:
        issuing = issuing_row(session)
        assert issuing.crl_dirty_since is not None and issuing.revocation_version == 3
    # Nothing was rebuilt inline, and within the minimum interval the publisher waits.
    assert crl_of(ca_platform, "issuing").extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == \
        first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert service.publish_due_crls() == []
    clock.advance(seconds=61)
    published = service.publish_due_crls()
    assert [p.entries for p in published] == [3]
    crl = crl_of(ca_platform, "issuing")
    assert {entry.serial_number for entry in crl} == {info.serial for info in infos}
    assert crl.next_update_utc == crl.last_update_utc + dt.timedelta(hours=24)
    with ca_platform.platform.transaction() as session:
        issuing = issuing_row(session)
        assert issuing.crl_dirty_since is None
    # Clean again: nothing is due until half the validity has passed, then it is republished.
    clock.advance(seconds=61)
    assert service.publish_due_crls() == []
    clock.advance(hours=12)
    assert {p.ca_id for p in service.publish_due_crls()} == {c.id for c in service.list_cas()}


def test_crl_numbers_strictly_increase_and_old_crls_are_pruned(ca_platform: CAPlatform) -> None:
    service = ca_platform.ca
    numbers = [service.publish_crl("issuing").crl_number for _ in range(7)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 7
    with ca_platform.platform.transaction() as session:
        kept = session.scalars(select(CRLRow.crl_number).where(CRLRow.ca_id == service.get_ca("issuing").id)).all()
    assert sorted(kept) == numbers[-5:]
    crl = crl_of(ca_platform, "issuing")
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == numbers[-1]


def test_revoked_sub_ca_appears_in_the_root_crl_and_stops_issuing(ca_platform: CAPlatform) -> None:
    service = ca_platform.ca
    finance = service.create_ca("dept-finance", parent="root", actor="t",
                                name_constraints=NameConstraints(permitted_dns=("finance.example.gov.cn",)))
    assert finance.parent == "root" and finance.ocsp_certificate is not None
    constraints = finance.certificate.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    record = service.get_certificate(format(finance.serial, "x"))
    assert record.profile == "sub-ca" and record.ca == "root"
    service.revoke(record.id, actor="t", reason="cACompromise")
    assert service.get_ca("dept-finance").status == "revoked"
    service.publish_crl("root")
    entry = crl_of(ca_platform, "root").get_revoked_certificate_by_serial_number(finance.serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.ca_compromise
    with pytest.raises(CAInactive):
        issue_tls(ca_platform, ca="dept-finance")


def test_sub_ca_path_length_rules(ca_platform: CAPlatform) -> None:
    service = ca_platform.ca
    with pytest.raises(ProfileViolation) as refused:
        service.create_ca("under-issuing", parent="issuing", actor="t")
    assert refused.value.rule == "path_length"
    middle = service.create_ca("dept-a", parent="root", path_length=1, actor="t")
    assert middle.path_length == 1
    leaf_ca = service.create_ca("dept-a-office", parent="dept-a", actor="t")
    assert leaf_ca.path_length == 0
    issued = issue_tls(ca_platform, ca="dept-a-office")
    assert len(issued.chain) == 3


def test_expiry_alerts_cover_end_entities_and_the_platform_own_certificates(ca_platform: CAPlatform) -> None:
    service, clock, alerts = ca_platform.ca, ca_platform.clock, ca_platform.platform.alerts
    short = issue_tls(ca_platform, validity_days=10).certificate
    later = issue_tls(ca_platform, "later.example.gov.cn", validity_days=300).certificate
    expiring = {info.id for info in service.check_expiry()}
    assert short.id in expiring and later.id not in expiring
    responders = {ca.ocsp_certificate_id for ca in service.list_cas()}
    assert responders <= expiring  # the 7-day OCSP responder certificates are the platform's own
    named = [a for a in alerts.history
             if a.name == "ca.certificate_expiring" and a.details["certificate_id"] in responders]
    assert named and all(a.details["platform"] for a in named)
    renewed = service.renew(short.id, actor="t").certificate
    expiring = {info.id for info in service.check_expiry()}
    assert short.id not in expiring and renewed.id not in expiring
    clock.advance(days=6)
    renewed_cas = service.renew_ocsp_responders()
    assert set(renewed_cas) == {"root", "issuing"}
    for ca in service.list_cas():
        assert ca.ocsp_certificate.not_valid_after_utc > clock() + dt.timedelta(days=6)
    assert service.renew_ocsp_responders() == []


def test_ocsp_responder_renewal_job_runs_once_per_slot_and_responses_use_the_new_certificate(
    ca_platform: CAPlatform,
) -> None:
    service, clock = ca_platform.ca, ca_platform.clock
    issuing = service.get_ca("issuing")
    info = issue_tls(ca_platform).certificate
    old = ocsp_status(ca_platform, info.certificate, issuing.certificate)
    clock.advance(days=6)
    result = service.run_maintenance("node-a")
    assert set(result["renewed"]) == {"root", "issuing"} and result["expiring"] is not None
    # Another node in the same slot does nothing.
    assert service.run_maintenance("node-b") == {"renewed": [], "expiring": None}
    new = ocsp_status(ca_platform, info.certificate, issuing.certificate)
    assert new.certificates[0].serial_number != old.certificates[0].serial_number
    assert new.certificates[0].serial_number == service.get_ca("issuing").ocsp_certificate.serial_number


def test_leases_admit_one_holder_until_released_or_expired(ca_platform: CAPlatform) -> None:
    now = ca_platform.clock()
    ttl = dt.timedelta(minutes=1)
    with ca_platform.platform.transaction() as session:
        assert acquire_lease(session, "test.job", "a", ttl, now=now)
    with ca_platform.platform.transaction() as session:
        assert not acquire_lease(session, "test.job", "b", ttl, now=now)
        assert acquire_lease(session, "test.job", "a", ttl, now=now)  # the holder extends it
    with ca_platform.platform.transaction() as session:
        release_lease(session, "test.job", "a", now=now)
        assert acquire_lease(session, "test.job", "b", ttl, now=now)
    with ca_platform.platform.transaction() as session:
        assert acquire_lease(session, "test.job", "c", ttl, now=now + dt.timedelta(minutes=2))  # b's expired
    with ca_platform.platform.transaction() as session:
        assert claim_run(session, "test.daily", "a", "2030-01-01", ttl, now=now)
    with ca_platform.platform.transaction() as session:
        assert not claim_run(session, "test.daily", "a", "2030-01-01", ttl, now=now)
        assert claim_run(session, "test.daily", "a", "2030-01-02", ttl, now=now)


def test_crl_publisher_skips_while_another_node_holds_the_lease(ca_platform: CAPlatform) -> None:
    service, clock = ca_platform.ca, ca_platform.clock
    clock.advance(hours=13)  # every CRL is due
    with ca_platform.platform.transaction() as session:
        assert acquire_lease(session, LEASE_NAME, "other-node", dt.timedelta(minutes=5), now=clock())
    assert service.publish_due_crls("this-node") == []
    clock.advance(minutes=6)  # the other node died: its lease expires
    assert len(service.publish_due_crls("this-node")) == 2


@pytest.mark.parametrize("algorithm", ["ed25519", "rsa-3072"])
def test_hierarchy_with_another_algorithm_issues_revokes_and_answers(tmp_path, algorithm: str) -> None:
    from tests.integration.ca.conftest import _ca_platform

    for env in _ca_platform(tmp_path, ca={"algorithm": algorithm}):
        root, issuing = env.ca.get_ca("root"), env.ca.get_ca("issuing")
        assert type(root.certificate.public_key()) is type(issuing.certificate.public_key())
        issuing.certificate.verify_directly_issued_by(root.certificate)
        info = issue_tls(env).certificate
        info.certificate.verify_directly_issued_by(issuing.certificate)
        env.ca.revoke(info.id, actor="t", reason="superseded")
        assert ocsp_status(env, info.certificate, issuing.certificate).certificate_status is OCSPCertStatus.REVOKED
        env.ca.publish_crl("issuing")
        crl = crl_of(env, "issuing")
        assert crl.is_signature_valid(issuing.certificate.public_key())
        assert crl.get_revoked_certificate_by_serial_number(info.serial) is not None


def test_a_revoked_responder_certificate_is_replaced_with_a_new_key(ca_platform: CAPlatform) -> None:
    service = ca_platform.ca
    before = service.get_ca("issuing")
    service.revoke(before.ocsp_certificate_id, actor="t", reason="keyCompromise")
    after = service.get_ca("issuing")
    assert after.ocsp_certificate_id != before.ocsp_certificate_id and after.ocsp_key_id != before.ocsp_key_id
    info = issue_tls(ca_platform).certificate
    response = ocsp_status(ca_platform, info.certificate, after.certificate)
    assert response.certificates[0].serial_number == after.ocsp_certificate.serial_number

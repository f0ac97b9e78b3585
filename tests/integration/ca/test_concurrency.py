"""Concurrent issuance and revocation share transactions (group commit) without losing or mixing anything."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

import ca.service as service_module
from ca.models import ISSUED, REVOKED, CertificateAuthorityRow, CertificateRow
from ca.service import IssueRequest
from ca.service_errors import AlreadyRevoked, CertificateNotFound
from ca.store import GroupCommit
from core.store.models import AuditRecordRow
from tests.integration.ca.conftest import CAPlatform, make_csr


def hold_first_group(commit: GroupCommit[Any, Any], queued: int) -> None:
    """Make ``commit`` hold its first group until ``queued`` more callers wait, so the next group is shared."""
    write = commit._write
    first = threading.Event()

    def slow(items: list[Any]) -> Any:
        if not first.is_set():
            first.set()
            deadline = time.monotonic() + 20
            while len(commit._queue) < queued and time.monotonic() < deadline:
                time.sleep(0.005)
        return write(items)

    commit._write = slow


def audit_actions(env: CAPlatform, action: str) -> int:
    with env.platform.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditRecordRow).where(AuditRecordRow.action == action))


def run_together(count: int, call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` for i in range(count) from ``count`` threads; results or raised exceptions, in order."""
    def guarded(i: int) -> Any:
        try:
            return call(i)
        except Exception as e:  # noqa: BLE001 - returned for the test to inspect
            return e

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(guarded, range(count)))


def test_concurrent_issues_share_commits_and_each_certificate_is_stored_with_its_audit_record(
    ca_platform: CAPlatform,
) -> None:
    service = ca_platform.ca
    hold_first_group(service._reservations, 11)
    hold_first_group(service._issued, 11)
    csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    before = audit_actions(ca_platform, "certificate.issue")

    results = run_together(12, lambda i: service.issue(IssueRequest(profile="server-tls", csr=csr),
                                                           actor=f"test:caller-{i}"))

    assert all(not isinstance(r, Exception) for r in results), results
    infos = [r.certificate for r in results]
    assert len({i.id for i in infos}) == 12 and len({i.serial for i in infos}) == 12
    assert service._reservations.groups < service._reservations.items
    assert service._issued.groups < service._issued.items
    with ca_platform.platform.transaction() as session:
        for info in infos:
            row = session.get(CertificateRow, info.id)
            assert row is not None and row.status == ISSUED and row.der == info.der and row.serial == info.serial
        records = session.scalars(select(AuditRecordRow).where(AuditRecordRow.action == "certificate.issue")).all()
        by_target = {r.target: r for r in records}
        for info in infos:
            record = by_target[f"certificate:issuing/{info.serial_hex}"]
            assert record.actor == info.requested_by  # each record names its own caller
        assert ca_platform.platform.require_audit().verify(session).records > 0  # raises if the chain broke
    assert audit_actions(ca_platform, "certificate.issue") == before + 12


def test_concurrent_revocations_share_a_commit_and_a_refused_one_fails_alone(ca_platform: CAPlatform) -> None:
    service = ca_platform.ca
    csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    infos = [service.issue(IssueRequest(profile="server-tls", csr=csr), actor="test:alice").certificate
             for _ in range(6)]
    service.revoke(infos[0].id, actor="test:alice")
    before = audit_actions(ca_platform, "certificate.revoke")
    references: list[int | str] = [info.id for info in infos] + ["id:999999999"]
    hold_first_group(service._revocations, len(references) - 1)

    results = run_together(len(references), lambda i: service.revoke(references[i], actor="test:bob",
                                                                     reason="keyCompromise"))

    assert isinstance(results[0], AlreadyRevoked)
    assert isinstance(results[-1], CertificateNotFound)
    assert [r.status for r in results[1:-1]] == [REVOKED] * 5
    assert service._revocations.groups < service._revocations.items
    assert audit_actions(ca_platform, "certificate.revoke") == before + 5
    with ca_platform.platform.transaction() as session:
        statuses = {row.id: (row.status, row.revocation_reason)
                    for row in session.scalars(select(CertificateRow).where(
                        CertificateRow.id.in_([info.id for info in infos])))}
        issuing = session.scalars(
            select(CertificateAuthorityRow).where(CertificateAuthorityRow.name == "issuing")
        ).one()
        assert issuing.crl_dirty_since is not None
        assert ca_platform.platform.require_audit().verify(session).records > 0  # raises if the chain broke
    assert statuses[infos[0].id] == (REVOKED, "unspecified")
    assert all(statuses[info.id] == (REVOKED, "keyCompromise") for info in infos[1:])


def test_a_serial_collision_in_a_group_of_reservations_is_retried_one_at_a_time(
    sqlite_ca_platform: CAPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = sqlite_ca_platform
    service = env.ca
    real = service_module.new_serial
    handed: list[int] = []
    colliding = real()

    def new_serial() -> int:
        # The two reservations of the shared group get the same number; every later one a fresh number.
        value = colliding if len(handed) < 3 else real()
        handed.append(value)
        return value

    csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    hold_first_group(service._reservations, 2)
    monkeypatch.setattr(service_module, "new_serial", new_serial)

    results = run_together(3, lambda i: service.issue(IssueRequest(profile="server-tls", csr=csr), actor="test:a"))

    assert all(not isinstance(r, Exception) for r in results), results
    serials = [r.certificate.serial for r in results]
    assert len(set(serials)) == 3 and serials.count(colliding) == 1
    with env.platform.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CertificateRow)
                              .where(CertificateRow.serial == colliding)) == 1

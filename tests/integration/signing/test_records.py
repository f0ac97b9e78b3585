"""Signature records written by many threads at once: grouped into shared transactions, each with its audit record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api.platform import Platform, initialise, open_platform
from core.store.models import AuditRecordRow
from signing.models import SignatureRow
from signing.service import NewSignature, SignatureRecord, SignatureService
from tests.helpers import make_settings


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    """A fresh platform, once on SQLite and once on PostgreSQL."""
    settings = make_settings(tmp_path / "var", database_url)
    initialise(settings)
    opened = open_platform(settings)
    try:
        yield opened
    finally:
        opened.close()


def _new(number: int, **changes: object) -> NewSignature:
    values: dict[str, object] = {
        "kind": "pdf",
        "document": b"document %d" % number,
        "output": b"signed document %d" % number,
        "signer_serial": "1f",
        "signer_fingerprint": "ab" * 32,
        "signer_subject": "CN=seal",
        "key_id": "key-1",
        "level": "B-T",
        "requester": f"token:robot-{number}",
        "seal": "office",
        "details": {"path": "api", "number": number},
    }
    values.update(changes)
    return NewSignature(**values)  # type: ignore[arg-type]


def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _service(platform: Platform) -> SignatureService:
    service = platform.services["signing"].records
    assert isinstance(service, SignatureService)
    return service


def _audited(platform: Platform) -> dict[str, AuditRecordRow]:
    with platform.transaction() as session:
        rows = session.scalars(select(AuditRecordRow).where(AuditRecordRow.action == "signature.pdf")).all()
        session.expunge_all()
    return {row.target: row for row in rows}


def test_records_made_at_once_are_each_committed_with_their_audit_record(platform: Platform) -> None:
    service = _service(platform)
    results: dict[int, SignatureRecord] = {}
    errors: list[BaseException] = []

    def record(number: int) -> None:
        try:
            results[number] = service.record(_new(number))
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len({r.id for r in results.values()}) == 24
    with platform.transaction() as session:
        assert session.scalar(select(func.count()).select_from(SignatureRow)) == 24
        assert platform.require_audit().verify(session).records > 0
    audited = _audited(platform)
    for number, result in results.items():
        entry = audited[f"signature:{result.id}"]
        assert entry.actor == f"token:robot-{number}"
        assert f'"number":{number}' in entry.details


def test_a_record_that_cannot_be_written_fails_alone_in_its_group(platform: Platform) -> None:
    service = _service(platform)
    results: dict[int, SignatureRecord] = {}
    errors: dict[int, BaseException] = {}

    def record(number: int) -> None:
        # Record 3 carries a float in its audit details, which the audit log refuses.
        new = _new(number, details={"ratio": 0.5}) if number == 3 else _new(number)
        try:
            results[number] = service.record(new)
        except Exception as e:
            errors[number] = e

    # Hold the audit chain (an append takes SQLite's write lock, or PostgreSQL's audit advisory lock): the first
    # record's transaction waits for it, and the records asked for meanwhile queue behind that one; once the
    # lock is free they are committed together, as one group.
    threads = [threading.Thread(target=record, args=(n,)) for n in range(6)]
    with platform.transaction() as session:
        platform.require_audit().append(session, actor="test", action="test.hold")
        threads[0].start()
        _wait(lambda: service._committing and not service._queue)  # the first leads, its group taken
        for thread in threads[1:]:
            thread.start()
        _wait(lambda: len(service._queue) == 5)
    for thread in threads:
        thread.join(60)
    assert set(errors) == {3}
    assert isinstance(errors[3], TypeError)
    assert sorted(results) == [0, 1, 2, 4, 5]
    with platform.transaction() as session:
        assert session.scalar(select(func.count()).select_from(SignatureRow)) == 5
    assert {f"signature:{r.id}" for r in results.values()} == set(_audited(platform))

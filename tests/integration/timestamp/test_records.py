"""Every granted token is recorded and audit-logged, in group commits, before it is returned.

Runs on SQLite and on a real PostgreSQL database (``database_url``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import tsp
from sqlalchemy import select

from api.components.timestamp import policy_of, trust_of
from api.platform import Platform
from core.store.models import AuditRecordRow
from tests.integration.timestamp.tsa_platform import counts, tsa_platform
from timestamp.asn1 import TimeStampResp
from timestamp.request import build_request
from timestamp.service import TimestampService, TokenRecorder
from timestamp.service_errors import RecordingFailed

DATA = b"recorded timestamp %d\n"


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    opened = tsa_platform(tmp_path, database_url, tsa={"batch_window_ms": 5})
    yield opened
    opened.close()


def _service(platform: Platform) -> TimestampService:
    service = platform.services["tsa"]
    assert isinstance(service, TimestampService)
    return service


def _serial_of(der: bytes) -> int:
    token = TimeStampResp.load(der)["time_stamp_token"]
    tst_info = tsp.TSTInfo.load(bytes(token["content"]["encap_content_info"]["content"]))
    return int(tst_info["serial_number"].native)


async def _stamp_many(service: TimestampService, count: int, concurrency: int = 64) -> list[bytes]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int) -> bytes:
        async with semaphore:
            answer = await service.stamp_async(build_request(DATA % index), source=f"192.0.2.{index % 250}")
            assert answer.granted, answer.record
            return answer.der

    return await asyncio.gather(*(one(i) for i in range(count)))


def test_every_granted_token_has_a_record_and_an_audit_record_committed_in_groups(platform: Platform) -> None:
    service = _service(platform)
    recorder_batches = service._recorder.batches  # noqa: SLF001 - the grouping is what this test is about
    before = counts(platform)

    replies = asyncio.run(_stamp_many(service, 300))

    assert counts(platform) == (before[0] + 300, before[1] + 300)
    batches = service._recorder.batches - recorder_batches  # noqa: SLF001
    assert batches < 300 / 4, f"{batches} commits for 300 tokens: no grouping"
    for der in replies[::37]:
        serial = _serial_of(der)
        record = service.get(serial)
        tst_info = tsp.TSTInfo.load(
            bytes(TimeStampResp.load(der)["time_stamp_token"]["content"]["encap_content_info"]["content"])
        )
        assert record.message_imprint == tst_info["message_imprint"]["hashed_message"].native.hex()
        assert record.gen_time == tst_info["gen_time"].native
        assert record.nonce == tst_info["nonce"].native
        assert record.requester.startswith("192.0.2.")
        with platform.transaction() as session:
            audit = session.execute(
                select(AuditRecordRow).where(AuditRecordRow.target == f"timestamp:{serial:x}")
            ).scalar_one()
        assert audit.action == "timestamp.issue" and audit.actor == "anonymous"
        assert audit.source == record.requester
    with platform.transaction() as session:
        report = platform.require_audit().verify(session)
    assert report.records >= 300


def test_rejected_requests_write_nothing(platform: Platform) -> None:
    service = _service(platform)
    before = counts(platform)

    for request in (b"garbage", build_request(DATA % 1)[:-3], build_request(DATA % 1, hash_algorithm="sha224")):
        assert not service.stamp(request).granted

    assert counts(platform) == before


def test_a_serial_collision_withholds_only_that_token(platform: Platform) -> None:
    # A second service on the same database whose serial source repeats one number.
    existing = _serial_of(_service(platform).stamp(build_request(DATA % 0)).der)
    fresh = itertools.count(1_000_000)
    serials = iter([existing, *[next(fresh) for _ in range(10)]])
    recorder = TokenRecorder(platform.sessions, platform.require_audit(), window=0.05, max_batch=50)
    colliding = TimestampService(
        sessions=platform.sessions,
        recorder=recorder,
        policy=policy_of(platform),
        trust=lambda: trust_of(platform),
        credentials=_service(platform).credentials,
        serial_numbers=lambda: next(serials),
    )
    before = counts(platform)
    try:

        async def together() -> list[bool]:
            answers = await asyncio.gather(*(colliding.stamp_async(build_request(DATA % i)) for i in range(5)))
            return [a.granted for a in answers]

        granted = asyncio.run(together())
    finally:
        colliding.close()

    assert granted == [False, True, True, True, True]
    assert counts(platform) == (before[0] + 4, before[1] + 4)


def test_a_failed_commit_returns_system_failure_and_no_token(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(platform)
    before = counts(platform)

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the audit log is full")

    monkeypatch.setattr(platform.require_audit(), "append_many", refuse)
    answer = service.stamp(build_request(DATA % 2))

    assert not answer.granted and answer.token is None
    status = TimeStampResp.load(answer.der)["status"]
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {"system_failure"}
    assert counts(platform) == before


def test_the_recorder_refuses_work_after_close(platform: Platform) -> None:
    recorder = TokenRecorder(platform.sessions, platform.require_audit())
    recorder.close()
    answer = _service(platform).stamp(build_request(DATA % 3))  # the platform's own recorder still works
    assert answer.granted
    with pytest.raises(RecordingFailed):
        from timestamp.service import PendingToken

        recorder.record(PendingToken(answer.record, "0" * 64, "anonymous", ""))


def test_throughput_through_the_service_with_recording(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    """Not an assertion on speed: prints a figure for the benchmark (bench/ has the real one)."""
    service = _service(platform)
    requests = [build_request(DATA % i) for i in range(1500)]

    async def run() -> float:
        semaphore = asyncio.Semaphore(128)

        async def one(request: bytes) -> None:
            async with semaphore:
                assert (await service.stamp_async(request, source="127.0.0.1")).granted

        started = time.perf_counter()
        await asyncio.gather(*(one(r) for r in requests))
        return len(requests) / (time.perf_counter() - started)

    rate = asyncio.run(run())
    started = time.perf_counter()
    responder = service._responder()[0]  # noqa: SLF001 - signing alone, for comparison
    for request in requests[:500]:
        responder.respond(request)
    signing = 500 / (time.perf_counter() - started)
    with capsys.disabled():
        dialect = platform.engine.dialect.name
        print(
            f"\n[tsa throughput, {dialect}] {rate:.0f} tokens/s recorded and audited "
            f"(signing alone: {signing:.0f} tokens/s, one process)"
        )

"""The service layer around the TSA: group commits, requester names, [tsa] settings, clock wiring."""

from __future__ import annotations

import datetime as dt
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.components.timestamp import accuracy_of, build_clock_monitor
from core.alerts import AlertChannel
from core.config import Settings
from core.errors import ConfigurationError
from core.store import build_engine, session_factory
from timestamp.models import TimestampTokenRow
from timestamp.policy import Accuracy
from timestamp.service import ANONYMOUS, PendingToken, TokenRecorder, requester_of
from timestamp.service_errors import RecordingFailed
from timestamp.tsa import TimestampRecord

GEN_TIME = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


class FakeAudit:
    """Counts appends per transaction; can be told to fail."""

    def __init__(self) -> None:
        self.appends: list[dict[str, Any]] = []
        self.fail = False
        self.lock = threading.Lock()

    def append(self, session: Session, **fields: Any) -> None:
        if self.fail:
            raise RuntimeError("audit store refused")
        with self.lock:
            self.appends.append(fields)

    def append_many(self, session: Session, events: list[Any]) -> None:
        for event in events:
            self.append(session, actor=event.actor, action=event.action, target=event.target, source=event.source,
                        details=event.details)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = build_engine(f"sqlite:///{tmp_path / 'tsa.db'}")
    TimestampTokenRow.__table__.create(engine)  # type: ignore[attr-defined]
    yield session_factory(engine)
    engine.dispose()


def _pending(serial: int) -> PendingToken:
    record = TimestampRecord(
        status="granted",
        serial_number=serial,
        message_imprint="ab" * 32,
        hash_algorithm="sha256",
        policy="1.2.3.4",
        gen_time=GEN_TIME,
        nonce=serial * 7,
        requester="192.0.2.1",
        cert_req=True,
    )
    return PendingToken(record, "f" * 64, ANONYMOUS, "192.0.2.1")


def _rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(TimestampTokenRow)) or 0)


def test_records_submitted_within_the_window_commit_together(sessions: sessionmaker[Session]) -> None:
    audit = FakeAudit()
    recorder = TokenRecorder(sessions, audit, window=0.3, max_batch=100)  # type: ignore[arg-type]
    futures = [recorder.submit(_pending(i + 1)) for i in range(20)]
    for future in futures:
        future.result(timeout=10)
    recorder.close()

    assert recorder.batches == 1 and recorder.recorded == 20
    assert _rows(sessions) == 20
    assert len(audit.appends) == 20
    first = audit.appends[0]
    assert first["action"] == "timestamp.issue" and first["target"] == "timestamp:1"
    assert first["details"]["nonce"] == "7" and first["details"]["gen_time"] == "2026-11-23T08:00:00.000000Z"


def test_a_group_never_exceeds_the_batch_size(sessions: sessionmaker[Session]) -> None:
    recorder = TokenRecorder(sessions, FakeAudit(), window=0.2, max_batch=5)  # type: ignore[arg-type]
    futures = [recorder.submit(_pending(i + 1)) for i in range(12)]
    for future in futures:
        future.result(timeout=10)
    recorder.close()
    assert recorder.batches == 3


def test_a_failed_group_fails_every_waiting_token_and_writes_nothing(sessions: sessionmaker[Session]) -> None:
    audit = FakeAudit()
    audit.fail = True
    recorder = TokenRecorder(sessions, audit, window=0.05)  # type: ignore[arg-type]
    futures = [recorder.submit(_pending(i + 1)) for i in range(3)]
    for future in futures:
        with pytest.raises(RecordingFailed) as raised:
            future.result(timeout=10)
        assert raised.value.code == "timestamp.recording_failed"
    recorder.close()
    assert _rows(sessions) == 0 and recorder.failed == 3


def test_close_commits_what_is_queued_and_refuses_more(sessions: sessionmaker[Session]) -> None:
    recorder = TokenRecorder(sessions, FakeAudit(), window=0.5)  # type: ignore[arg-type]
    future = recorder.submit(_pending(1))
    recorder.close()
    assert future.result(timeout=0) is None
    with pytest.raises(RecordingFailed):
        recorder.record(_pending(2))
    assert _rows(sessions) == 1


def test_recorder_arguments_are_checked(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError):
        TokenRecorder(sessions, FakeAudit(), window=-1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenRecorder(sessions, FakeAudit(), max_batch=0)  # type: ignore[arg-type]


def test_the_requester_is_the_principal_or_the_address_of_an_anonymous_caller() -> None:
    assert requester_of("token:document-system", "192.0.2.7") == "token:document-system"
    assert requester_of(ANONYMOUS, "192.0.2.7") == "192.0.2.7"
    assert requester_of(ANONYMOUS, "") == ANONYMOUS
    assert len(requester_of("token:" + "x" * 500, "")) == 200


@pytest.mark.parametrize(
    ("seconds", "accuracy"),
    [(1.0, Accuracy(1)), (0.5, Accuracy(0, 500)), (0.000250, Accuracy(0, 0, 250)), (2.001002, Accuracy(2, 1, 2))],
)
def test_accuracy_seconds_become_an_rfc3161_accuracy(seconds: float, accuracy: Accuracy) -> None:
    assert accuracy_of(seconds) == accuracy


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"default_policy": "not.an.oid"}, "dotted object identifier"),
        ({"accepted_policies": ["1.2.3", "1.2.x"]}, "dotted object identifier"),
        ({"hash_algorithms": ["sha1"]}, "hash_algorithms"),
        ({"hash_algorithms": []}, "at least one hash algorithm"),
        ({"accuracy_seconds": 0.0000005}, "accuracy_seconds"),
        ({"accuracy_seconds": 0.5, "max_clock_offset_seconds": 0.6}, "must not exceed accuracy_seconds"),
        ({"ntp_servers": ["ntp.example.cn:123:4"]}, "host, host:port"),
        ({"batch_window_ms": 500}, "batch_window_ms"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_tsa_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(tsa=values)


def test_defaults_are_sha2_and_one_second_and_public() -> None:
    tsa = Settings().tsa
    assert tsa.hash_algorithms == ["sha256", "sha384", "sha512"]
    assert tsa.accuracy_seconds == 1.0 and not tsa.require_authentication and tsa.ntp_servers == []


def _platform(environment: str, **tsa: Any) -> Any:
    settings = Settings(instance={"environment": environment}, tsa=tsa)
    return types.SimpleNamespace(settings=settings, alerts=AlertChannel(enabled=False))


def test_production_refuses_a_tsa_without_ntp_servers() -> None:
    with pytest.raises(ConfigurationError, match="ntp_servers"):
        build_clock_monitor(_platform("production"))


def test_development_without_ntp_servers_trusts_the_system_clock() -> None:
    assert build_clock_monitor(_platform("development")) is None


def test_the_monitor_checks_against_the_tighter_limit_and_alerts_through_the_platform() -> None:
    platform = _platform(
        "production",
        ntp_servers=["127.0.0.1:9"],
        accuracy_seconds=1,
        max_clock_offset_seconds=0.25,
        ntp_timeout_seconds=0.2,
    )
    monitor = build_clock_monitor(platform)
    assert monitor is not None and monitor.accuracy == 0.25

    status = monitor.poll()  # nothing answers on the discard port

    assert not status.healthy and not monitor.is_healthy()
    assert [(a.name, a.severity) for a in platform.alerts.history] == [("tsa.clock_unhealthy", "critical")]


def test_service_errors_have_their_own_codes_and_both_titles() -> None:
    import inspect

    import timestamp.errors
    import timestamp.service_errors
    from timestamp.errors import TimestampError

    def leaves(module: types.ModuleType) -> list[type[TimestampError]]:
        return [
            c
            for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, TimestampError) and c.__module__ == module.__name__
        ]

    ours = leaves(timestamp.service_errors)
    codes = [e.code for e in ours + leaves(timestamp.errors)]
    assert {e.code for e in ours} == {"timestamp.not_found", "timestamp.unavailable", "timestamp.recording_failed"}
    assert len(codes) == len(set(codes))
    assert all(e.title_en and e.title_zh and e.__doc__ for e in ours)

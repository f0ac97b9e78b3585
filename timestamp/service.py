"""The timestamp authority as a platform service: issuing with records, looking up, verifying.

:class:`TimestampService` wraps the RFC 3161 core (:class:`timestamp.tsa.TSAService`)
with what a deployed TSA needs around it:

- every granted token is **recorded** (serial, imprint, hash algorithm,
  policy, genTime, nonce, requester) and **audit-logged** before its bytes are
  returned; if that commit fails, the client gets ``systemFailure`` instead;
- to keep that fast, records are committed in small groups by one writer
  thread (:class:`TokenRecorder`): it waits a few milliseconds after the first
  record for others, then commits them together with their audit records in
  one transaction, and only then releases the callers waiting for that group;
- the clock discipline is consulted per request (``clock_check``, usually
  :meth:`timestamp.clock.ClockMonitor.is_healthy`);
- the key and certificate can be replaced while running (:meth:`install`),
  for a renewed certificate.

Nothing here imports FastAPI, typer or another domain package: the composition
root (``api/components/timestamp.py``) finds the key and certificate and passes
them in as :class:`TSACredentials`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Table, and_, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.audit import AuditEvent
from core.clock import isoformat_utc
from core.store import transaction
from timestamp.algorithms import Signer
from timestamp.errors import TimestampRequestInvalid
from timestamp.models import TimestampTokenRow
from timestamp.policy import TSAPolicy
from timestamp.service_errors import RecordingFailed, TimestampNotFound, TSAUnavailable
from timestamp.tsa import (
    Failure,
    TimestampRecord,
    TSAResponse,
    TSAService,
    always_healthy,
    random_serial_number,
    system_clock,
)
from timestamp.verify import VerifiedTimestamp, verify_token

if TYPE_CHECKING:
    from core.audit import AuditLog
    from timestamp.clock import ClockMonitor

log = logging.getLogger("hengxin.timestamp")

ANONYMOUS = "anonymous"
AUDIT_ACTION = "timestamp.issue"
# A Core insert of plain rows: the ORM's bulk path would inspect every row for mapped state.
_INSERT_TOKENS = insert(cast(Table, TimestampTokenRow.__table__))

Trust = Callable[[], tuple[Sequence[x509.Certificate], Sequence[x509.Certificate]]]


@dataclasses.dataclass(frozen=True)
class TSACredentials:
    """The TSA's signer (a key-store adapter), its certificate and the CA certificates above it.

    ``chain`` holds the certificates sent with a token when the request asks
    for them (the intermediates; the root is the relying party's to have).
    ``key_id`` names the key in the key store, for the readiness probe.
    """

    signer: Signer
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    key_id: str | None = None

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate's DER, lower-case hex (computed once: it goes into every record)."""
        return hashlib.sha256(self.certificate.public_bytes(Encoding.DER)).hexdigest()


@dataclasses.dataclass(frozen=True)
class StoredTimestamp:
    """The record of a granted token."""

    id: int
    serial: int
    gen_time: dt.datetime
    hash_algorithm: str
    message_imprint: str
    policy: str
    nonce: int | None
    cert_req: bool
    requester: str
    tsa_certificate: str

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


@dataclasses.dataclass(frozen=True)
class TimestampQuery:
    """Filters of a record search; ``after_id`` is the pagination key (ids ascending)."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    requester: str | None = None
    hash_algorithm: str | None = None
    policy: str | None = None
    message_imprint: str | None = None
    after_id: int = 0
    limit: int = 50


@dataclasses.dataclass(frozen=True)
class PendingToken:
    """A granted token waiting for its group commit."""

    record: TimestampRecord
    tsa_certificate: str
    actor: str
    source: str


def _stored(row: TimestampTokenRow) -> StoredTimestamp:
    return StoredTimestamp(
        id=row.id,
        serial=row.serial,
        gen_time=row.gen_time,
        hash_algorithm=row.hash_algorithm,
        message_imprint=row.message_imprint,
        policy=row.policy,
        nonce=int(row.nonce, 16) if row.nonce is not None else None,
        cert_req=row.cert_req,
        requester=row.requester,
        tsa_certificate=row.tsa_certificate,
    )


def _log_rejection(response: TSAResponse) -> None:
    record = response.record
    log.info(
        "timestamp request rejected",
        extra={"failure": record.failure, "reason": record.reason, "requester": record.requester},
    )


def requester_of(actor: str, source: str) -> str:
    """What the record names as requester: the principal, or for anonymous callers their address."""
    requester = actor if actor != ANONYMOUS else (source or ANONYMOUS)
    return requester[:200]


class TokenRecorder:
    """One writer thread committing token records and their audit records in small groups.

    :meth:`submit` queues a :class:`PendingToken` and returns a future that is
    resolved once the group holding it has committed, or fails with
    :class:`RecordingFailed` if it could not be.  A group is collected for
    ``window`` seconds after its first record (or until ``max_batch``
    records), then written in one transaction.  When a group fails on a
    unique constraint (a serial collision), its records are retried one by one
    so only the offending token is refused.

    ``writer_lock`` names a lock file shared by the recorders of every process
    on one SQLite database (``hengxin serve`` with several workers).  Each
    takes it before its transaction: SQLite's own busy handler makes a
    writer that finds the database locked sleep 1, 2, 5, 10 ... ms and try
    again, so two recorders alternating on the write lock spent most of
    their time asleep; a waiter on the file lock is woken the moment the
    other process commits.  PostgreSQL needs none (its locks queue waiters).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        window: float = 0.002,
        max_batch: int = 256,
        writer_lock: Path | None = None,
    ) -> None:
        if window < 0 or max_batch < 1:
            raise ValueError("the batch window must be >= 0 and the batch size >= 1")
        self._sessions = sessions
        self._audit = audit
        self._writer_lock = writer_lock
        self._writer_lock_fd: int | None = None
        self.window = window
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[PendingToken, Future[None]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.recorded = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="tsa-recorder", daemon=True)
        self._thread.start()

    def submit(self, pending: PendingToken) -> Future[None]:
        """Queue ``pending``; the future resolves after its group committed (never raises here)."""
        future: Future[None] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(
                    RecordingFailed("the timestamp recorder is shut down", detail_zh="时间戳记录器已关闭")
                )
                return future
            self._queue.put((pending, future))
        return future

    def record(self, pending: PendingToken, timeout: float | None = 30.0) -> None:
        """Submit and wait for the commit. Raises :class:`RecordingFailed`."""
        try:
            self.submit(pending).result(timeout)
        except RecordingFailed:
            raise
        except Exception as e:
            raise RecordingFailed("the timestamp could not be recorded", detail_zh="时间戳无法记录") from e

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        if self._writer_lock_fd is not None and not self._thread.is_alive():
            os.close(self._writer_lock_fd)
            self._writer_lock_fd = None

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[PendingToken, Future[None]]]) -> None:
        try:
            with self._writing():
                self._write([pending for pending, _ in batch])
        except IntegrityError:
            if len(batch) == 1:
                self._fail(batch, "the serial number is already recorded")
                return
            log.warning("a timestamp group hit a unique constraint; recording its tokens one by one")
            for item in batch:
                self._commit([item])
            return
        except Exception:
            log.exception("committing %d timestamp records failed", len(batch))
            self._fail(batch, "the database did not accept the records")
            return
        self.batches += 1
        self.recorded += len(batch)
        for _, future in batch:
            future.set_result(None)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer lock file, if there is one, for one transaction."""
        if self._writer_lock is None:
            yield
            return
        if self._writer_lock_fd is None:
            self._writer_lock_fd = os.open(self._writer_lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._writer_lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._writer_lock_fd, fcntl.LOCK_UN)

    def _fail(self, batch: list[tuple[PendingToken, Future[None]]], reason: str) -> None:
        self.failed += len(batch)
        for _, future in batch:
            future.set_exception(
                RecordingFailed(f"the timestamp was not recorded: {reason}", detail_zh="时间戳记录失败，令牌未发出")
            )

    def _write(self, batch: list[PendingToken]) -> None:
        rows: list[dict[str, Any]] = []
        for pending in batch:
            record = pending.record
            assert record.serial_number is not None and record.gen_time is not None
            rows.append(
                {
                    "serial": record.serial_number,
                    "gen_time": record.gen_time,
                    "hash_algorithm": record.hash_algorithm,
                    "message_imprint": record.message_imprint,
                    "policy": record.policy,
                    "nonce": format(record.nonce, "x") if record.nonce is not None else None,
                    "cert_req": record.cert_req,
                    "requester": requester_of(pending.actor, pending.source),
                    "tsa_certificate": pending.tsa_certificate,
                }
            )
        with transaction(self._sessions) as session:
            session.execute(_INSERT_TOKENS, rows)
            events = []
            for pending, row in zip(batch, rows, strict=True):
                record = pending.record
                assert record.gen_time is not None
                events.append(
                    AuditEvent(
                        actor=pending.actor,
                        action=AUDIT_ACTION,
                        target=f"timestamp:{row['serial']:x}",
                        source=pending.source,
                        details={
                            "serial": format(row["serial"], "x"),
                            "gen_time": isoformat_utc(record.gen_time),
                            "hash_algorithm": record.hash_algorithm,
                            "message_imprint": record.message_imprint,
                            "policy": record.policy,
                            "nonce": row["nonce"],
                            "tsa_certificate": pending.tsa_certificate,
                        },
                    )
                )
            self._audit.append_many(session, events)


class TimestampService:
    """Issue recorded timestamps, look them up and verify tokens.  Safe to share between threads.

    ``policy`` is the TSA policy; ``clock`` the time source of genTime;
    ``clock_monitor`` the NTP discipline (``None``: the system clock is trusted
    as it is, for development); ``trust()`` returns the trusted roots and the
    intermediates used by :meth:`verify`; ``serial_numbers`` returns a fresh
    positive serial per token (default: 128 random bits).  Until :meth:`install` is given
    credentials, issuing raises :class:`TSAUnavailable`.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        recorder: TokenRecorder,
        policy: TSAPolicy,
        trust: Trust,
        clock: Callable[[], dt.datetime] = system_clock,
        clock_monitor: ClockMonitor | None = None,
        credentials: TSACredentials | None = None,
        serial_numbers: Callable[[], int] = random_serial_number,
    ) -> None:
        self._sessions = sessions
        self._serial_numbers = serial_numbers
        self._recorder = recorder
        self.policy = policy
        self._trust = trust
        self._clock = clock
        self.clock_monitor = clock_monitor
        self._clock_check: Callable[[], bool] = clock_monitor.is_healthy if clock_monitor else always_healthy
        self._current: tuple[TSAService, TSACredentials] | None = None
        if credentials is not None:
            self.install(credentials)

    # -- credentials ------------------------------------------------------------------------

    def install(self, credentials: TSACredentials) -> None:
        """Start signing with ``credentials`` (first start, renewal, re-key).

        Prepares the new responder completely before switching, so requests in
        flight finish with the old one.  Raises
        :class:`~timestamp.errors.TSAConfigurationError` when the key does not
        match the certificate or the certificate is not a TSA certificate.
        """
        responder = TSAService(
            credentials.signer,
            credentials.certificate,
            self.policy,
            credentials.chain,
            serial_numbers=self._serial_numbers,
            clock=self._clock,
            clock_check=self._clock_check,
        )
        self._current = (responder, credentials)
        serial = format(credentials.certificate.serial_number, "x")
        log.info("TSA certificate installed", extra={"serial": serial, "fingerprint": credentials.fingerprint})

    def uninstall(self) -> None:
        """Stop issuing (the certificate expired or was revoked) until :meth:`install` is called again."""
        if self._current is not None:
            log.warning("TSA certificate withdrawn: no tokens are issued until a valid one is installed")
        self._current = None

    @property
    def credentials(self) -> TSACredentials | None:
        """The credentials in use, or ``None`` before :meth:`install`."""
        current = self._current
        return current[1] if current else None

    def _responder(self) -> tuple[TSAService, TSACredentials]:
        current = self._current
        if current is None:
            raise TSAUnavailable(
                "the TSA has no certificate: run `hengxin init`", detail_zh="时间戳服务没有证书，请运行 `hengxin init`"
            )
        return current

    def clock_healthy(self) -> bool:
        """Whether the clock is known to be within the declared accuracy (cheap)."""
        return bool(self._clock_check())

    # -- issuing ----------------------------------------------------------------------------

    def stamp(self, request_der: bytes, *, actor: str = ANONYMOUS, source: str = "") -> TSAResponse:
        """Answer a DER ``TimeStampReq``, recording a granted token before returning it (blocking).

        A token whose record cannot be committed is replaced by a
        ``systemFailure`` rejection.  Raises :class:`TSAUnavailable` when no
        credentials are installed; never raises for the request's content.
        """
        responder, credentials = self._responder()
        response = responder.respond(request_der, requester_of(actor, source))
        if not response.granted:
            _log_rejection(response)
            return response
        future = self._recorder.submit(PendingToken(response.record, credentials.fingerprint, actor, source))
        try:
            future.result()
        except Exception:
            return self._not_recorded(responder, response)
        return response

    async def stamp_async(
        self, request_der: bytes, *, actor: str = ANONYMOUS, source: str = "", sign_in_thread: bool = False
    ) -> TSAResponse:
        """:meth:`stamp` for the event loop: waits for the group commit without blocking the loop.

        ``sign_in_thread`` runs the signature in a worker thread (keys behind
        PKCS #11 or Vault block on I/O; in-memory file keys sign in tens of
        microseconds and are cheaper to call inline).
        """
        responder, credentials = self._responder()
        requester = requester_of(actor, source)
        if sign_in_thread:
            response = await asyncio.to_thread(responder.respond, request_der, requester)
        else:
            response = responder.respond(request_der, requester)
        if not response.granted:
            _log_rejection(response)
            return response
        future = self._recorder.submit(PendingToken(response.record, credentials.fingerprint, actor, source))
        try:
            await asyncio.wrap_future(future)
        except Exception:
            return self._not_recorded(responder, response)
        return response

    def _not_recorded(self, responder: TSAService, response: TSAResponse) -> TSAResponse:
        log.error(
            "a granted timestamp was not recorded and is withheld",
            extra={"serial": format(response.record.serial_number or 0, "x")},
        )
        return responder.reject(Failure.SYSTEM_FAILURE, "the token could not be recorded", response.record.requester)

    # -- records ----------------------------------------------------------------------------

    def get(self, serial: int) -> StoredTimestamp:
        """The record of the token with this serial number. Raises :class:`TimestampNotFound`."""
        with transaction(self._sessions) as session:
            row = session.execute(
                select(TimestampTokenRow).where(TimestampTokenRow.serial == serial)
            ).scalar_one_or_none()
            if row is None:
                raise TimestampNotFound(
                    f"no timestamp with serial number {serial:x}", detail_zh=f"序列号为 {serial:x} 的时间戳不存在"
                )
            return _stored(row)

    def search(self, query: TimestampQuery) -> list[StoredTimestamp]:
        """Up to ``query.limit + 1`` records matching every filter, ids ascending after ``after_id``."""
        conditions = [TimestampTokenRow.id > query.after_id]
        if query.since is not None:
            conditions.append(TimestampTokenRow.gen_time >= query.since)
        if query.until is not None:
            conditions.append(TimestampTokenRow.gen_time < query.until)
        if query.requester:
            conditions.append(TimestampTokenRow.requester == query.requester)
        if query.hash_algorithm:
            conditions.append(TimestampTokenRow.hash_algorithm == query.hash_algorithm)
        if query.policy:
            conditions.append(TimestampTokenRow.policy == query.policy)
        if query.message_imprint:
            conditions.append(TimestampTokenRow.message_imprint == query.message_imprint.lower())
        with transaction(self._sessions) as session:
            rows = session.scalars(
                select(TimestampTokenRow).where(and_(*conditions)).order_by(TimestampTokenRow.id).limit(query.limit + 1)
            ).all()
            return [_stored(row) for row in rows]

    def count(self) -> int:
        """How many tokens are recorded."""
        with transaction(self._sessions) as session:
            return int(session.scalar(select(func.count()).select_from(TimestampTokenRow)) or 0)

    # -- verification -----------------------------------------------------------------------

    def verify(
        self, token: bytes, *, data: bytes | None = None, digest: bytes | None = None
    ) -> tuple[VerifiedTimestamp, StoredTimestamp | None]:
        """Verify a token or ``TimeStampResp`` against ``data`` or its ``digest`` (one is required).

        Trusts the roots given by ``trust()``; returns what the token says and
        this TSA's record of it (``None`` when the serial was not issued here or
        the record names another imprint).  Raises
        :class:`TimestampRequestInvalid` without data or digest, and the
        errors of :func:`timestamp.verify.verify_token` when the token does not
        verify.
        """
        if data is None and digest is None:
            raise TimestampRequestInvalid(
                "give the data or its digest to check the token against", detail_zh="请提供数据或其摘要以核对时间戳"
            )
        roots, intermediates = self._trust()
        verified = verify_token(token, roots=roots, intermediates=intermediates, data=data, digest=digest)
        try:
            stored = self.get(verified.serial_number)
        except TimestampNotFound:
            stored = None
        if stored is not None and stored.message_imprint != verified.message_imprint.hex():
            stored = None
        return verified, stored

    # -- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Commit queued records and stop the writer."""
        self._recorder.close()

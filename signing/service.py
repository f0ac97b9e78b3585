"""The record of signatures made by the platform, and the errors of choosing a signing key.

:class:`SignatureService` writes one row per signature (or document
timestamp) together with its audit record, in one transaction, and reads the
rows back for listing.  It knows nothing about HTTP, the CA or the TSA: the
composition root (``api/components/signing.py``) picks the key, signs with the
pure functions of this package, then calls :meth:`SignatureService.record`
before the signed output leaves the process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from core.audit import AuditEvent
from core.errors import Category
from core.store import transaction
from signing.errors import SigningError
from signing.models import SignatureRow

if TYPE_CHECKING:
    from core.audit import AuditLog

KINDS = ("pdf", "cms", "doc-timestamp")
GROUP_MAX = 64  # most records committed in one transaction
AUDIT_ACTIONS = {"pdf": "signature.pdf", "cms": "signature.cms", "doc-timestamp": "signature.doc_timestamp"}


class SealNotAllowed(SigningError):
    """The caller may not sign with this seal (or no such seal exists: the two are not told apart)."""

    code = "signing.seal_not_allowed"
    category = Category.FORBIDDEN
    title_en = "You may not sign with this seal"
    title_zh = "无权使用该电子印章"


class SealUnavailable(SigningError):
    """The seal is configured, but its certificate is missing, revoked, expired or has no custodial key."""

    code = "signing.seal_unavailable"
    category = Category.CONFLICT
    title_en = "The seal's certificate cannot be used"
    title_zh = "电子印章证书不可用"


class NoSigningCertificate(SigningError):
    """The caller has no valid custodial ``person-sign`` certificate to sign with."""

    code = "signing.no_signing_certificate"
    category = Category.CONFLICT
    title_en = "No personal signing certificate"
    title_zh = "没有可用的个人签名证书"


class PersonalSigningRefused(SigningError):
    """A personal signature was asked for through a path where the signatory is not the one in control."""

    code = "signing.personal_signing_refused"
    category = Category.FORBIDDEN
    title_en = "Personal signatures need the signatory's own strong authentication"
    title_zh = "个人签名须由签名人本人经强认证后发起"


@dataclasses.dataclass(frozen=True)
class SignatureRecord:
    """A signature made here, as the API and the CLI see it."""

    id: int
    kind: str
    document_sha256: str
    output_sha256: str
    output_size: int
    signer_serial: str
    signer_fingerprint: str
    signer_subject: str
    key_id: str
    seal: str | None
    signatory: str | None
    level: str
    created_at: dt.datetime
    requester: str
    output_kept: bool


@dataclasses.dataclass(frozen=True)
class NewSignature:
    """What :meth:`SignatureService.record` writes: the input and output bytes and who signed with what.

    ``details`` goes into the audit record as well (step-up ``amr`` and ``auth_time``, source address ...).
    """

    kind: str
    document: bytes = dataclasses.field(repr=False)
    output: bytes = dataclasses.field(repr=False)
    signer_serial: str
    signer_fingerprint: str
    signer_subject: str
    key_id: str
    level: str
    requester: str
    seal: str | None = None
    signatory: str | None = None
    source: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SignatureQuery:
    """Filters of a record search; ``after_id`` is the pagination key (ids ascending)."""

    kind: str | None = None
    seal: str | None = None
    signatory: str | None = None
    requester: str | None = None
    document_sha256: str | None = None
    output_sha256: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    after_id: int = 0
    limit: int = 50


@dataclasses.dataclass(eq=False)
class _Waiter:
    """A record waiting for its group's commit; ``lead`` when its thread is to commit the queue."""

    new: NewSignature
    document_sha256: str
    output_sha256: str
    lead: bool = False
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: SignatureRecord | None = None
    error: BaseException | None = None


def _record(row: SignatureRow) -> SignatureRecord:
    return SignatureRecord(
        id=row.id,
        kind=row.kind,
        document_sha256=row.document_sha256,
        output_sha256=row.output_sha256,
        output_size=row.output_size,
        signer_serial=row.signer_serial,
        signer_fingerprint=row.signer_fingerprint,
        signer_subject=row.signer_subject,
        key_id=row.key_id,
        seal=row.seal,
        signatory=row.signatory,
        level=row.level,
        created_at=row.created_at,
        requester=row.requester,
        output_kept=row.output is not None,
    )


class SignatureService:
    """Records of signatures, each committed with its audit record.  Safe to share between threads."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        clock: Callable[[], dt.datetime],
        *,
        keep_signed_files: bool = False,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._clock = clock
        self.keep_signed_files = keep_signed_files
        self._group_lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._committing = False

    def record(self, new: NewSignature) -> SignatureRecord:
        """Write the record and its audit record in one transaction and return the record.

        The caller returns the signed output only after this succeeded; any
        database error propagates (and the output is then withheld).

        Records asked for at the same time by several threads share one
        transaction (group commit): while one thread commits, the others
        queue, and the first of them then commits the whole queue.  Each
        record is still committed, with its audit record, before this
        returns; a queue is never held back waiting for more records.
        """
        if new.kind not in KINDS:
            raise ValueError(f"unknown signature kind {new.kind!r}")
        waiter = _Waiter(new, hashlib.sha256(new.document).hexdigest(), hashlib.sha256(new.output).hexdigest())
        with self._group_lock:
            self._queue.append(waiter)
            if not self._committing:
                self._committing = True
                waiter.lead = True
        if not waiter.lead:
            waiter.done.wait()
        if waiter.lead:
            self._commit_queue()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.result is not None
        return waiter.result

    def _commit_queue(self) -> None:
        """Commit what is queued (this thread leads), then hand the lead to the next queued record, if any."""
        with self._group_lock:
            batch, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
        try:
            self._write_group(batch)
        finally:
            with self._group_lock:
                following = self._queue[0] if self._queue else None
                if following is None:
                    self._committing = False
                else:
                    following.lead = True
            for waiter in batch:
                if waiter.result is None and waiter.error is None:  # the write was interrupted
                    waiter.error = RuntimeError("the signature record was not written")
                waiter.lead = False
                waiter.done.set()
            if following is not None:
                following.done.set()

    def _write_group(self, batch: list[_Waiter]) -> None:
        """Write ``batch`` in one transaction; if that fails, each record alone, so one bad record fails alone."""
        try:
            results = self._write(batch)
        except Exception as e:
            if len(batch) == 1:
                batch[0].error = e
                return
            for waiter in batch:
                try:
                    waiter.result = self._write([waiter])[0]
                except Exception as single:
                    waiter.error = single
            return
        for waiter, result in zip(batch, results, strict=True):
            waiter.result = result

    def _write(self, batch: list[_Waiter]) -> list[SignatureRecord]:
        # A Core INSERT ... RETURNING id (one statement for the group) rather than ORM objects: the rows are
        # never read back here, and the unit of work cost more than the insert itself.
        now = self._clock()
        rows: list[dict[str, Any]] = [
            {
                "kind": waiter.new.kind,
                "document_sha256": waiter.document_sha256,
                "output_sha256": waiter.output_sha256,
                "output_size": len(waiter.new.output),
                "signer_serial": waiter.new.signer_serial,
                "signer_fingerprint": waiter.new.signer_fingerprint,
                "signer_subject": waiter.new.signer_subject[:500],
                "key_id": waiter.new.key_id,
                "seal": waiter.new.seal,
                "signatory": waiter.new.signatory,
                "level": waiter.new.level,
                "created_at": now,
                "requester": waiter.new.requester[:200],
                "output": waiter.new.output if self.keep_signed_files else None,
            }
            for waiter in batch
        ]
        with transaction(self._sessions) as session:
            ids = session.scalars(
                insert(SignatureRow).returning(SignatureRow.id, sort_by_parameter_order=True), rows
            ).all()
            self._audit.append_many(
                session, [self._audit_event(waiter, number) for waiter, number in zip(batch, ids, strict=True)]
            )
        return [
            SignatureRecord(
                id=number,
                kind=row["kind"],
                document_sha256=row["document_sha256"],
                output_sha256=row["output_sha256"],
                output_size=row["output_size"],
                signer_serial=row["signer_serial"],
                signer_fingerprint=row["signer_fingerprint"],
                signer_subject=row["signer_subject"],
                key_id=row["key_id"],
                seal=row["seal"],
                signatory=row["signatory"],
                level=row["level"],
                created_at=now,
                requester=row["requester"],
                output_kept=row["output"] is not None,
            )
            for number, row in zip(ids, rows, strict=True)
        ]

    def _audit_event(self, waiter: _Waiter, record_id: int) -> AuditEvent:
        new = waiter.new
        return AuditEvent(
            actor=new.requester,
            action=AUDIT_ACTIONS[new.kind],
            target=f"signature:{record_id}",
            source=new.source,
            details={
                "record": record_id,
                "level": new.level,
                "document_sha256": waiter.document_sha256,
                "output_sha256": waiter.output_sha256,
                "signer_serial": new.signer_serial,
                "signer_fingerprint": new.signer_fingerprint,
                "key_id": new.key_id,
                "seal": new.seal,
                "signatory": new.signatory,
                "output_kept": self.keep_signed_files,
                **new.details,
            },
        )

    def record_refusal(self, *, actor: str, action: str, target: str, source: str, details: dict[str, Any]) -> None:
        """Audit a refused signing attempt (a seal the caller may not use ...); no signature row is written."""
        with transaction(self._sessions) as session:
            self._audit.append(
                session, actor=actor, action=action, target=target, outcome="denied", source=source, details=details
            )

    def search(self, query: SignatureQuery) -> list[SignatureRecord]:
        """Up to ``query.limit + 1`` records matching every filter, ids ascending after ``after_id``."""
        conditions = [SignatureRow.id > query.after_id]
        if query.kind:
            conditions.append(SignatureRow.kind == query.kind)
        if query.seal:
            conditions.append(SignatureRow.seal == query.seal)
        if query.signatory:
            conditions.append(SignatureRow.signatory == query.signatory)
        if query.requester:
            conditions.append(SignatureRow.requester == query.requester)
        if query.document_sha256:
            conditions.append(SignatureRow.document_sha256 == query.document_sha256.lower())
        if query.output_sha256:
            conditions.append(SignatureRow.output_sha256 == query.output_sha256.lower())
        if query.since is not None:
            conditions.append(SignatureRow.created_at >= query.since)
        if query.until is not None:
            conditions.append(SignatureRow.created_at < query.until)
        with transaction(self._sessions) as session:
            rows = session.scalars(
                select(SignatureRow).where(and_(*conditions)).order_by(SignatureRow.id).limit(query.limit + 1)
            ).all()
            return [_record(row) for row in rows]

    def signed_file(self, record_id: int) -> bytes | None:
        """The kept output of a record, or ``None`` when it was not kept (or there is no such record)."""
        with transaction(self._sessions) as session:
            row = session.get(SignatureRow, record_id)
            return None if row is None else row.output

    def count(self) -> int:
        with transaction(self._sessions) as session:
            return int(session.scalar(select(func.count()).select_from(SignatureRow)) or 0)

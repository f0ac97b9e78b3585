"""The append-only, hash-chained audit log.

Each record is encoded canonically (RFC 8785) and that text is stored verbatim,
so SQLite and PostgreSQL hash the same bytes.  A record's hash is the SHA-256
of its canonical text, which includes the previous record's hash: changing,
removing or inserting a record breaks the chain from that point on.

Signed checkpoints (head sequence and hash, signed with the audit key) are
written every N records or minutes, stored in the database and written to the
log output.  They make truncation and a wholesale rewrite of the chain
detectable: the rewriter does not have the audit key.

Writers append inside the caller's transaction, so an action and its audit
record commit together or not at all.  Appends are serialised per database (an
advisory lock on PostgreSQL; SQLite transactions take the write lock at
BEGIN), so two processes never fork the chain; the sequence number is also the
primary key.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from sqlalchemy import Table, event, insert, select, text
from sqlalchemy.orm import Session

from core.clock import Clock, isoformat_utc, utc_now
from core.errors import AuditChainBroken, AuditError, AuditTruncated
from core.jcs import canonicalize
from core.keys.base import KeyStore, SignatureScheme
from core.store.models import AuditCheckpointRow, AuditRecordRow, AuditSegmentRow

log = logging.getLogger("hengxin.audit")

GENESIS_HASH = "0" * 64
_PG_LOCK_KEY = 0x4858_4155  # "HXAU"
OUTCOMES = ("success", "failure", "denied")


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    sequence: int
    recorded_at: dt.datetime
    actor: str
    action: str
    target: str
    outcome: str
    source: str
    details: dict[str, Any]
    previous_hash: str
    record_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "recorded_at": isoformat_utc(self.recorded_at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "source": self.source,
            "details": self.details,
            "previous_hash": self.previous_hash,
            "record_hash": self.record_hash,
        }


@dataclasses.dataclass(frozen=True)
class AuditEvent:
    """One thing to record; see :meth:`AuditLog.append_many`."""

    actor: str
    action: str
    target: str = ""
    outcome: str = "success"
    source: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    sequence: int
    head_hash: str
    created_at: dt.datetime
    key_id: str
    canonical: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "hengxin.audit.checkpoint",
            "canonical": self.canonical,
            "signature": self.signature,
        }


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    records: int
    first_sequence: int | None
    head_sequence: int
    head_hash: str
    checkpoints: int


def _record_document(
    sequence: int,
    recorded_at: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    source: str,
    details: dict[str, Any],
    previous_hash: str,
) -> dict[str, Any]:
    return {
        "v": 1,
        "sequence": sequence,
        "recorded_at": recorded_at,
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "source": source,
        "details": details,
        "previous_hash": previous_hash,
    }


def _row_to_record(row: AuditRecordRow) -> AuditRecord:
    return AuditRecord(
        sequence=row.sequence,
        recorded_at=row.recorded_at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        source=row.source,
        details=json.loads(row.details),
        previous_hash=row.previous_hash,
        record_hash=row.record_hash,
    )


# Statements every audited transaction runs, built once.
_PG_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_HEAD = select(AuditRecordRow.sequence, AuditRecordRow.record_hash).order_by(AuditRecordRow.sequence.desc()).limit(1)
_SEGMENT_HEAD = (
    select(AuditSegmentRow.last_sequence, AuditSegmentRow.last_hash)
    .order_by(AuditSegmentRow.last_sequence.desc())
    .limit(1)
)
_INSERT_RECORD = insert(cast(Table, AuditRecordRow.__table__))


class AuditLog:
    """Append to, checkpoint, verify, export and prune the audit chain."""

    def __init__(
        self,
        keystore: KeyStore,
        key_id: str,
        *,
        instance: str = "hengxin",
        checkpoint_every: int = 100,
        checkpoint_minutes: int = 10,
        clock: Clock = utc_now,
    ) -> None:
        self.keystore = keystore
        self.key_id = key_id
        self.instance = instance
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = dt.timedelta(minutes=checkpoint_minutes)
        self.clock = clock
        self._last_checkpoint_at: dt.datetime | None = None
        self._lock = threading.Lock()

    # -- writing ----------------------------------------------------------------------

    @staticmethod
    def _serialise(session: Session) -> None:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.execute(_PG_LOCK, {"key": _PG_LOCK_KEY})

    @staticmethod
    def head(session: Session) -> tuple[int, str]:
        """(sequence, hash) of the newest record, or of the last pruned one, or (0, genesis)."""
        connection = session.connection()
        row = connection.execute(_HEAD).first()
        if row is not None:
            return int(row[0]), str(row[1])
        segment = connection.execute(_SEGMENT_HEAD).first()
        if segment is not None:
            return int(segment[0]), str(segment[1])
        return 0, GENESIS_HASH

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        target: str = "",
        outcome: str = "success",
        source: str = "",
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one record inside ``session``'s transaction and return it.

        ``details`` must be JSON made of strings, integers, booleans, null,
        lists and objects (no floats).  Never put secrets in it.
        """
        event = AuditEvent(actor=actor, action=action, target=target, outcome=outcome, source=source,
                           details=details or {})
        return self.append_many(session, [event])[0]

    def append_many(self, session: Session, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append several records in order inside ``session``'s transaction, with one head read and one insert.

        For high-rate writers (the TSA records every token) this costs a
        fraction of one ``append`` per record.  The records are chained
        exactly as if appended one by one; a checkpoint is written at the end
        of the batch when the batch crosses a checkpoint boundary.
        """
        if not events:
            return []
        for item in events:
            if item.outcome not in OUTCOMES:
                raise AuditError(f"unknown audit outcome {item.outcome!r}")
        self._serialise(session)
        sequence, previous = self.head(session)
        recorded_at = self.clock()
        stamp = isoformat_utc(recorded_at)
        rows: list[dict[str, Any]] = []
        records: list[AuditRecord] = []
        crossed = False
        for item in events:
            sequence += 1
            details = dict(item.details)
            document = _record_document(sequence, stamp, item.actor, item.action, item.target, item.outcome,
                                        item.source, details, previous)
            canonical = canonicalize(document)
            record_hash = hashlib.sha256(canonical).hexdigest()
            rows.append({
                "sequence": sequence,
                "recorded_at": recorded_at,
                "actor": item.actor,
                "action": item.action,
                "target": item.target,
                "outcome": item.outcome,
                "source": item.source,
                "details": canonicalize(details).decode("utf-8"),
                "previous_hash": previous,
                "record_hash": record_hash,
                "canonical": canonical.decode("utf-8"),
            })
            records.append(AuditRecord(sequence, recorded_at, item.actor, item.action, item.target, item.outcome,
                                       item.source, details, previous, record_hash))
            crossed = crossed or sequence % self.checkpoint_every == 0
            previous = record_hash
        # A Core insert on the session's connection (not the ORM's bulk path); one row: a plain execute.
        session.connection().execute(_INSERT_RECORD, rows[0] if len(rows) == 1 else rows)
        if crossed or self.checkpoint_due(recorded_at):
            self._write_checkpoint(session, sequence, previous)
        return records

    def checkpoint_due(self, now: dt.datetime) -> bool:
        """True when the time-based checkpoint interval has passed since the last checkpoint."""
        with self._lock:
            last = self._last_checkpoint_at
        if last is None:
            with self._lock:
                self._last_checkpoint_at = now
            return False
        return now - last >= self.checkpoint_interval

    def checkpoint(self, session: Session) -> Checkpoint | None:
        """Write a checkpoint at the current head unless the newest checkpoint already covers it."""
        self._serialise(session)
        sequence, head_hash = self.head(session)
        if sequence == 0:
            return None
        last = session.execute(
            select(AuditCheckpointRow.sequence).order_by(AuditCheckpointRow.id.desc()).limit(1)
        ).first()
        if last is not None and last[0] >= sequence:
            return None
        return self._write_checkpoint(session, sequence, head_hash)

    def _write_checkpoint(self, session: Session, sequence: int, head_hash: str) -> Checkpoint:
        created_at = self.clock()
        document = {
            "type": "hengxin.audit.checkpoint",
            "v": 1,
            "instance": self.instance,
            "sequence": sequence,
            "head_hash": head_hash,
            "created_at": isoformat_utc(created_at),
            "key_id": self.key_id,
        }
        canonical = canonicalize(document)
        signature = base64.b64encode(self.keystore.sign(self.key_id, canonical)).decode()
        row = AuditCheckpointRow(
            sequence=sequence,
            head_hash=head_hash,
            created_at=created_at,
            key_id=self.key_id,
            canonical=canonical.decode("utf-8"),
            signature=signature,
        )
        session.add(row)
        session.flush()
        checkpoint = Checkpoint(sequence, head_hash, created_at, self.key_id, row.canonical, signature)
        with self._lock:
            self._last_checkpoint_at = created_at

        def _announce(_session: Session) -> None:
            # Only after the commit: a rolled-back checkpoint must not be anchored in the logs.
            log.info("audit checkpoint", extra={"audit_checkpoint": checkpoint.to_json()})

        event.listen(session, "after_commit", _announce, once=True)
        return checkpoint

    # -- reading --------------------------------------------------------------------

    def records(
        self,
        session: Session,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        after_sequence: int = 0,
        action: str | None = None,
        actor: str | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        query = select(AuditRecordRow).where(AuditRecordRow.sequence > after_sequence)
        if since is not None:
            query = query.where(AuditRecordRow.recorded_at >= since)
        if until is not None:
            query = query.where(AuditRecordRow.recorded_at < until)
        if action:
            query = query.where(AuditRecordRow.action == action)
        if actor:
            query = query.where(AuditRecordRow.actor == actor)
        query = query.order_by(AuditRecordRow.sequence)
        if limit is not None:
            query = query.limit(limit)
        return [_row_to_record(row) for row in session.scalars(query)]

    def export(
        self, session: Session, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> Iterator[str]:
        """JSON lines: every record (with its canonical text) from ``since``, in order."""
        after = 0
        while True:
            batch = session.scalars(self._export_query(since, until, after).limit(1000)).all()
            if not batch:
                return
            for row in batch:
                yield json.dumps(
                    {"record": json.loads(row.canonical), "record_hash": row.record_hash}, ensure_ascii=False
                )
            after = batch[-1].sequence

    @staticmethod
    def _export_query(since: dt.datetime | None, until: dt.datetime | None, after: int) -> Any:
        query = select(AuditRecordRow).where(AuditRecordRow.sequence > after)
        if since is not None:
            query = query.where(AuditRecordRow.recorded_at >= since)
        if until is not None:
            query = query.where(AuditRecordRow.recorded_at < until)
        return query.order_by(AuditRecordRow.sequence)

    # -- verification ---------------------------------------------------------------------

    def verify_checkpoint_signature(self, canonical: str, signature: str) -> dict[str, Any]:
        """Check a checkpoint's signature with the audit key; returns its document or raises AuditChainBroken."""
        document = json.loads(canonical)
        key_id = document.get("key_id", "")
        public_key = self.keystore.public_key(key_id)
        try:
            raw = base64.b64decode(signature, validate=True)
            _verify(public_key, raw, canonical.encode("utf-8"))
        except (InvalidSignature, ValueError):
            raise AuditChainBroken(
                f"checkpoint at sequence {document.get('sequence')} has an invalid signature",
                sequence=document.get("sequence"),
            ) from None
        return document

    def verify(self, session: Session, anchors: Sequence[dict[str, Any]] = ()) -> VerifyReport:
        """Walk the whole chain; raise AuditChainBroken at the first bad record or AuditTruncated.

        ``anchors`` are checkpoint documents taken from outside the database
        (the log output) as ``{"canonical": ..., "signature": ...}``.
        """
        start_sequence, previous = 0, GENESIS_HASH
        segment = session.execute(
            select(AuditSegmentRow).order_by(AuditSegmentRow.last_sequence.desc()).limit(1)
        ).scalar_one_or_none()
        if segment is not None:
            start_sequence, previous = segment.last_sequence, segment.last_hash
        expected = start_sequence + 1
        count = 0
        first: int | None = None
        hashes_at: dict[int, str] = {}
        checkpoints = [
            (row.canonical, row.signature)
            for row in session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id))
        ]
        wanted = set()
        documents = []
        for canonical, signature in [*checkpoints, *[(a["canonical"], a["signature"]) for a in anchors]]:
            document = self.verify_checkpoint_signature(canonical, signature)
            documents.append(document)
            wanted.add(int(document["sequence"]))
        after = start_sequence
        while True:
            batch = session.scalars(
                select(AuditRecordRow)
                .where(AuditRecordRow.sequence > after)
                .order_by(AuditRecordRow.sequence)
                .limit(2000)
            ).all()
            if not batch:
                break
            for row in batch:
                if row.sequence != expected:
                    raise AuditChainBroken(
                        f"audit record {expected} is missing (next present is {row.sequence})", sequence=expected
                    )
                self._verify_row(row, previous)
                if first is None:
                    first = row.sequence
                if row.sequence in wanted:
                    hashes_at[row.sequence] = row.record_hash
                previous = row.record_hash
                expected += 1
                count += 1
            after = batch[-1].sequence
        head = expected - 1
        for document in documents:
            sequence = int(document["sequence"])
            if sequence <= start_sequence:
                continue
            if sequence > head:
                raise AuditTruncated(
                    f"the audit log ends at sequence {head} but a signed checkpoint covers sequence {sequence}: "
                    "records after the last intact one were removed",
                    sequence=head + 1,
                )
            if hashes_at.get(sequence) != document["head_hash"]:
                raise AuditChainBroken(f"audit record {sequence} differs from the signed checkpoint", sequence=sequence)
        return VerifyReport(count, first, head, previous, len(documents))

    @staticmethod
    def _verify_row(row: AuditRecordRow, previous: str) -> None:
        sequence = row.sequence
        try:
            details = json.loads(row.details)
            document = _record_document(
                row.sequence,
                isoformat_utc(row.recorded_at),
                row.actor,
                row.action,
                row.target,
                row.outcome,
                row.source,
                details,
                row.previous_hash,
            )
            recomputed = canonicalize(document).decode("utf-8")
        except (ValueError, TypeError):
            raise AuditChainBroken(f"audit record {sequence} cannot be decoded", sequence=sequence) from None
        if recomputed != row.canonical:
            raise AuditChainBroken(f"audit record {sequence} was modified", sequence=sequence)
        if hashlib.sha256(row.canonical.encode("utf-8")).hexdigest() != row.record_hash:
            raise AuditChainBroken(f"audit record {sequence} does not match its hash", sequence=sequence)
        if row.previous_hash != previous:
            raise AuditChainBroken(f"audit record {sequence} does not follow record {sequence - 1}", sequence=sequence)

    # -- retention ------------------------------------------------------------------------

    def prune(self, admin_session: Session, *, retention_days: int, export_dir: Path) -> dict[str, Any] | None:
        """Export records older than ``retention_days`` to a signed segment file, then delete them.

        Runs on the schema owner's connection (the application's role may not
        delete audit rows).  The chain is verified first; nothing is deleted
        unless the export was written and synced.  Returns the segment, or
        None when nothing is old enough.
        """
        if retention_days < 180:
            raise AuditError("audit records must be kept at least 180 days")
        self.verify(admin_session)
        cutoff = self.clock() - dt.timedelta(days=retention_days)
        last = admin_session.execute(
            select(AuditRecordRow.sequence)
            .where(AuditRecordRow.recorded_at < cutoff)
            .order_by(AuditRecordRow.sequence.desc())
            .limit(1)
        ).scalar_one_or_none()
        if last is None:
            return None
        rows = admin_session.scalars(
            select(AuditRecordRow).where(AuditRecordRow.sequence <= last).order_by(AuditRecordRow.sequence)
        ).all()
        first_sequence, last_row = rows[0].sequence, rows[-1]
        export_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"audit-{first_sequence:012d}-{last_row.sequence:012d}.jsonl"
        body = "".join(
            json.dumps({"record": json.loads(r.canonical), "record_hash": r.record_hash}, ensure_ascii=False) + "\n"
            for r in rows
        ).encode("utf-8")
        digest = hashlib.sha256(body).hexdigest()
        manifest = canonicalize(
            {
                "type": "hengxin.audit.segment",
                "instance": self.instance,
                "first_sequence": first_sequence,
                "last_sequence": last_row.sequence,
                "last_hash": last_row.record_hash,
                "file": name,
                "sha256": digest,
                "key_id": self.key_id,
            }
        )
        signature = base64.b64encode(self.keystore.sign(self.key_id, manifest)).decode()
        _write_durable(export_dir / name, body)
        _write_durable(
            export_dir / f"{name}.sig.json",
            json.dumps({"canonical": manifest.decode(), "signature": signature}, ensure_ascii=False).encode(),
        )
        admin_session.add(
            AuditSegmentRow(
                first_sequence=first_sequence,
                last_sequence=last_row.sequence,
                last_hash=last_row.record_hash,
                file_name=name,
                file_sha256=digest,
                pruned_at=self.clock(),
            )
        )
        dialect = admin_session.get_bind().dialect.name
        if dialect == "postgresql":
            admin_session.execute(text("ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_delete"))
            admin_session.execute(
                text("DELETE FROM audit_records WHERE sequence <= :last"), {"last": last_row.sequence}
            )
            admin_session.execute(text("ALTER TABLE audit_records ENABLE TRIGGER audit_records_no_delete"))
        else:
            admin_session.execute(text("DROP TRIGGER audit_records_no_delete"))
            admin_session.execute(
                text("DELETE FROM audit_records WHERE sequence <= :last"), {"last": last_row.sequence}
            )
            admin_session.execute(
                text(
                    "CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records "
                    "BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END"
                )
            )
        return {"first_sequence": first_sequence, "last_sequence": last_row.sequence, "file": name, "sha256": digest}


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _verify(public_key: Any, signature: bytes, data: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        hash_algorithm = SignatureScheme("sha384" if public_key.curve.key_size == 384 else "sha256").hash()
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), SignatureScheme("sha256").hash())
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, data)
    else:
        raise InvalidSignature("unsupported key")

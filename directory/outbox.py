"""The LDAP outbox: changes written in the same transaction as the directory change they publish.

Each row says what to do to one LDAP entry (``entity``, ``operation``) and
carries what LDAP needs as JSON: the ``Published*`` value of
:mod:`directory.ldap_mapping`, with binary values (certificates, CRLs) in
base64.  A user's payload holds the argon2id hash that LDAP stores, never a
password.  :mod:`directory.publisher` applies rows in ``sequence`` order.

Ordering: rows are numbered at insert.  Every directory transaction appends
its audit record *before* it inserts outbox rows, and the audit log
serialises appends per database, so rows are numbered in commit order and a
publisher never sees a later row before an earlier one commits.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from directory.ldap_mapping import PublishedCA, PublishedDepartment, PublishedGroup, PublishedUser
from directory.models import OutboxRow

ENTITIES = ("department", "user", "group", "ca")
OPERATIONS = ("upsert", "delete", "move")


@dataclasses.dataclass(frozen=True)
class OutboxEntry:
    """One outbox row as the publisher and the status views see it."""

    sequence: int
    entity: str
    key: str
    operation: str
    payload: dict[str, Any]
    status: str
    created_at: dt.datetime
    attempts: int
    last_attempt_at: dt.datetime | None
    last_error: str | None


def entry_of(row: OutboxRow) -> OutboxEntry:
    return OutboxEntry(
        row.sequence,
        row.entity,
        row.key,
        row.operation,
        json.loads(row.payload),
        row.status,
        row.created_at,
        row.attempts,
        row.last_attempt_at,
        row.last_error,
    )


def enqueue(
    session: Session,
    *,
    entity: str,
    key: str,
    operation: str,
    payload: dict[str, Any],
    now: dt.datetime,
    on_commit: Callable[[], None] | None = None,
) -> None:
    """Add one change to the outbox inside ``session``'s transaction.

    ``on_commit`` runs after the transaction commits (to wake the publisher).
    """
    if entity not in ENTITIES or operation not in OPERATIONS:
        raise ValueError(f"unknown outbox change {entity}/{operation}")
    session.add(
        OutboxRow(
            entity=entity,
            key=key[:1000],
            operation=operation,
            payload=json.dumps(payload, ensure_ascii=False, sort_keys=True),
            status="pending",
            created_at=now,
            attempts=0,
            alerted=False,
        )
    )
    if on_commit is not None:
        callback = on_commit
        event.listen(session, "after_commit", lambda _session: callback(), once=True)


# -- payloads ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def user_payload(user: PublishedUser) -> dict[str, Any]:
    return {
        "login": user.login,
        "display_name": user.display_name,
        "given_name": user.given_name,
        "surname": user.surname,
        "email": user.email,
        "phone": user.phone,
        "department_path": list(user.department_path),
        "password_hash": user.password_hash,
        "locked": user.locked,
        "certificates": [_b64(c) for c in user.certificates],
    }


def published_user(payload: dict[str, Any]) -> PublishedUser:
    return PublishedUser(
        login=payload["login"],
        display_name=payload["display_name"],
        given_name=payload.get("given_name"),
        surname=payload.get("surname"),
        email=payload.get("email"),
        phone=payload.get("phone"),
        department_path=tuple(payload.get("department_path") or ()),
        password_hash=payload.get("password_hash"),
        locked=bool(payload.get("locked")),
        certificates=tuple(_unb64(c) for c in payload.get("certificates") or ()),
    )


def department_payload(department: PublishedDepartment) -> dict[str, Any]:
    return {
        "id": department.id,
        "name": department.name,
        "parent_path": list(department.parent_path),
        "description": department.description,
    }


def published_department(payload: dict[str, Any]) -> PublishedDepartment:
    return PublishedDepartment(
        id=payload["id"],
        name=payload["name"],
        parent_path=tuple(payload.get("parent_path") or ()),
        description=payload.get("description"),
    )


def group_payload(group: PublishedGroup) -> dict[str, Any]:
    return {"name": group.name, "members": list(group.members), "description": group.description}


def published_group(payload: dict[str, Any]) -> PublishedGroup:
    return PublishedGroup(
        name=payload["name"], members=tuple(payload.get("members") or ()), description=payload.get("description")
    )


def ca_payload(ca: PublishedCA) -> dict[str, Any]:
    return {
        "name": ca.name,
        "certificate": _b64(ca.certificate),
        "crl": _b64(ca.crl) if ca.crl is not None else None,
    }


def published_ca(payload: dict[str, Any]) -> PublishedCA:
    crl = payload.get("crl")
    return PublishedCA(
        name=payload["name"], certificate=_unb64(payload["certificate"]), crl=_unb64(crl) if crl else None
    )

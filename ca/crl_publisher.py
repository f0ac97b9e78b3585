"""CRL publication: queued, coalesced, numbered, stored.

A revocation never builds a CRL.  It marks its CA dirty
(``crl_dirty_since``, ``revocation_version``) and returns; the publisher,
run every few seconds by ``hengxin serve``, rebuilds the CRL of a CA when

* the CA has no CRL yet, or
* the CA is dirty and its newest CRL is at least ``min_interval`` old, or
* half of the newest CRL's validity has passed (so a new CRL always exists
  well before nextUpdate).

Only the holder of the database lease ``ca.crl_publisher`` publishes, so two
nodes never build CRLs at once.  The CRL number is taken from the CA row in
the same transaction that reads the revoked entries, so numbers increase
strictly and a higher number never carries older content.  The dirty mark is
cleared only if no revocation happened since the entries were read
(``revocation_version`` unchanged); otherwise the next cycle picks it up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from ca.crl import RevokedEntry, build_crl
from ca.models import CA_ACTIVE, HOLD, REVOKED, CertificateAuthorityRow, CertificateRow, CRLRow
from ca.service_errors import CRLBusy, CRLUnavailable
from core.clock import Clock
from core.jobs import acquire_lease, release_lease
from core.keys.base import KeyStore
from core.store import transaction

log = logging.getLogger("hengxin.ca.crl")

LEASE_NAME = "ca.crl_publisher"

_CERTIFICATES = cast(Table, CertificateRow.__table__)
_REVOKED_ENTRIES = select(
    _CERTIFICATES.c.serial,
    _CERTIFICATES.c.revoked_at,
    _CERTIFICATES.c.revocation_reason,
    _CERTIFICATES.c.invalidity_date,
).where(_CERTIFICATES.c.ca_id == bindparam("ca_id"), _CERTIFICATES.c.status.in_((REVOKED, HOLD)))


@dataclasses.dataclass(frozen=True)
class PublishedCRL:
    """A CRL as stored: its CA, number, update times, entry count and DER."""

    ca_id: int
    crl_number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int
    der: bytes = dataclasses.field(repr=False)

    @property
    def pem(self) -> bytes:
        crl = x509.load_der_x509_crl(self.der)
        return crl.public_bytes(serialization.Encoding.PEM)


class CRLPublisher:
    """Builds, numbers and stores CRLs; decides which CAs are due."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        keystore: KeyStore,
        clock: Clock,
        *,
        validity: dt.timedelta,
        min_interval: dt.timedelta,
        keep: int = 5,
        lease_ttl: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        self.sessions = sessions
        self.keystore = keystore
        self.clock = clock
        self.validity = validity
        self.min_interval = min_interval
        self.keep = max(1, keep)
        self.lease_ttl = lease_ttl
        self._cache: dict[int, PublishedCRL] = {}
        # One publication at a time in this process (API requests and the background job share it).
        self._publish_lock = threading.Lock()

    # -- reading ------------------------------------------------------------------------------------

    def latest(self, ca_id: int) -> PublishedCRL:
        """The newest stored CRL of the CA; raises CRLUnavailable when none was published.

        The DER is cached per process and re-read only when a newer CRL exists.
        """
        with transaction(self.sessions) as session:
            head = session.execute(
                select(CRLRow.id, CRLRow.crl_number)
                .where(CRLRow.ca_id == ca_id)
                .order_by(CRLRow.crl_number.desc())
                .limit(1)
            ).first()
            if head is None:
                raise CRLUnavailable("this CA has not published a CRL yet", detail_zh="该机构尚未发布 CRL")
            cached = self._cache.get(ca_id)
            if cached is not None and cached.crl_number == head.crl_number:
                return cached
            row = session.get(CRLRow, head.id)
            assert row is not None
            published = PublishedCRL(ca_id, row.crl_number, row.this_update, row.next_update, row.entries, row.der)
        self._cache[ca_id] = published
        return published

    def due(self, session: Session, ca: CertificateAuthorityRow, now: dt.datetime) -> bool:
        """Whether the CA's CRL should be rebuilt now (see the module docstring)."""
        latest = session.execute(
            select(CRLRow.this_update, CRLRow.next_update)
            .where(CRLRow.ca_id == ca.id)
            .order_by(CRLRow.crl_number.desc())
            .limit(1)
        ).first()
        if latest is None:
            return True
        if now >= latest.next_update - self.validity / 2:
            return True
        return ca.crl_dirty_since is not None and now - latest.this_update >= self.min_interval

    # -- publishing ---------------------------------------------------------------------------------

    def publish(self, ca_id: int) -> PublishedCRL:
        """Build, sign and store a new full CRL of the CA now (the caller holds the lease).

        The CRL number is taken first, under the CA row's lock, and the entries and thisUpdate are
        read after it in the same short transaction: a higher number therefore never carries older
        entries or an older thisUpdate, even when two publishers race.  Signing happens outside the
        transaction so revocations are not held up by a large CRL.
        """
        with self._publish_lock:
            return self._publish(ca_id)

    def _publish(self, ca_id: int) -> PublishedCRL:
        with transaction(self.sessions) as session:
            session.execute(
                update(CertificateAuthorityRow)
                .where(CertificateAuthorityRow.id == ca_id)
                .values(crl_number=CertificateAuthorityRow.crl_number + 1)
                .execution_options(synchronize_session=False)
            )
            ca = session.execute(
                select(
                    CertificateAuthorityRow.key_id,
                    CertificateAuthorityRow.certificate_der,
                    CertificateAuthorityRow.revocation_version,
                    CertificateAuthorityRow.crl_number,
                ).where(CertificateAuthorityRow.id == ca_id)
            ).one()
            number = ca.crl_number
            # Read under the lock: every revocation committed before the number was taken is included.
            this_update = self.clock().replace(microsecond=0)
            # A Core query on the session's connection: a CRL reads every revoked row of the CA (100,000 and
            # more), and the ORM's per-row work would cost more than the query.
            entries = session.connection().execute(_REVOKED_ENTRIES, {"ca_id": ca_id}).all()
        next_update = this_update + self.validity
        reasons = {reason.value: reason for reason in x509.ReasonFlags}
        revoked = [
            RevokedEntry(serial, revoked_at, reasons[reason] if reason else None, invalidity_date)
            for serial, revoked_at, reason, invalidity_date in entries
            if revoked_at is not None  # always set on revoked and held rows
        ]
        issuer = x509.load_der_x509_certificate(ca.certificate_der)
        started = time.perf_counter()
        crl = build_crl(issuer, self.keystore.private_key(ca.key_id), revoked, number, this_update, next_update)
        der = crl.public_bytes(serialization.Encoding.DER)
        with transaction(self.sessions) as session:
            session.add(
                CRLRow(
                    ca_id=ca_id,
                    crl_number=number,
                    this_update=this_update,
                    next_update=next_update,
                    entries=len(revoked),
                    der=der,
                )
            )
            session.execute(
                update(CertificateAuthorityRow)
                .where(
                    CertificateAuthorityRow.id == ca_id,
                    CertificateAuthorityRow.revocation_version == ca.revocation_version,
                )
                .values(crl_dirty_since=None)
                .execution_options(synchronize_session=False)
            )
            oldest_kept = session.execute(
                select(CRLRow.crl_number)
                .where(CRLRow.ca_id == ca_id)
                .order_by(CRLRow.crl_number.desc())
                .offset(self.keep - 1)
                .limit(1)
            ).scalar_one_or_none()
            if oldest_kept is not None:
                session.execute(delete(CRLRow).where(CRLRow.ca_id == ca_id, CRLRow.crl_number < oldest_kept))
        log.info(
            "published CRL",
            extra={"ca_id": ca_id, "crl_number": number, "entries": len(revoked),
                   "build_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        published = PublishedCRL(ca_id, number, this_update, next_update, len(revoked), der)
        self._cache[ca_id] = published
        return published

    def run_due(self, holder: str) -> list[PublishedCRL]:
        """Publish every active CA that is due, if this node gets the lease; return what was published."""
        now = self.clock()
        with transaction(self.sessions) as session:
            if not acquire_lease(session, LEASE_NAME, holder, self.lease_ttl, now=now):
                return []
        published = []
        try:
            with transaction(self.sessions) as session:
                cas = session.scalars(
                    select(CertificateAuthorityRow).where(CertificateAuthorityRow.status == CA_ACTIVE)
                ).all()
                due = [ca.id for ca in cas if self.due(session, ca, now)]
            for ca_id in due:
                published.append(self.publish(ca_id))
        finally:
            with transaction(self.sessions) as session:
                release_lease(session, LEASE_NAME, holder, now=self.clock())
        return published

    def publish_now(self, ca_id: int, holder: str, *, wait_seconds: float = 30.0) -> PublishedCRL:
        """Publish the CA's CRL now, waiting up to ``wait_seconds`` for another node's run to finish.

        Raises:
            CRLBusy: the lease stayed taken.
        """
        deadline = time.monotonic() + wait_seconds
        while True:
            with transaction(self.sessions) as session:
                if acquire_lease(session, LEASE_NAME, holder, self.lease_ttl, now=self.clock()):
                    break
            if time.monotonic() >= deadline:
                raise CRLBusy("another node is publishing CRLs; try again",
                              detail_zh="其他节点正在发布 CRL，请稍后重试")
            time.sleep(0.2)
        try:
            return self.publish(ca_id)
        finally:
            with transaction(self.sessions) as session:
                release_lease(session, LEASE_NAME, holder, now=self.clock())

"""The OCSP responder service (RFC 6960, RFC 5019 profile, RFC 8954 nonces).

Every CA answers through its own delegated responder certificate (profile
``ocsp-responder``).  The responders' :class:`~ca.ocsp.OCSPSigner` objects are
built once and kept: a response costs one indexed query and at most one
signature, and no key is read per request.

The status always comes from the database (one query on ``(ca_id, serial)``),
so a revocation is visible at once on every node that shares the database.
Requests without a nonce get a pre-signed response from an in-process cache,
used only while the certificate's status, revocation time and reason are
still those the response was signed for and its refresh time (half its
validity) has not passed; a revoke on this node also drops the entry.
Requests with a nonce are always signed fresh, with the nonce echoed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import time
from typing import Any

from cryptography import x509
from cryptography.x509.ocsp import OCSPResponseStatus
from sqlalchemy import bindparam, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ca.errors import OCSPError, OCSPMalformedRequest
from ca.models import CA_PENDING, HOLD, ISSUED, REVOKED, CertificateAuthorityRow, CertificateRow
from ca.ocsp import (
    CertificateStatus,
    IssuerHashes,
    OCSPSigner,
    build_ocsp_error,
    build_ocsp_response,
    parse_ocsp_request,
)
from core.clock import Clock
from core.errors import DatabaseUnavailable, HengxinError
from core.keys.base import KeyStore
from core.store import read_only_engine, read_transaction, sqlite_datetime, sqlite_reader

log = logging.getLogger("hengxin.ca.ocsp")

# (status, revoked_at, reason) as read from the database; None when the certificate is not known.
State = tuple[str, dt.datetime | None, str | None] | None

# The status lookup every answer makes, built and compiled once (SQLAlchemy caches the compiled form by
# statement; building the statement per request cost more than running it).
_STATUS = select(CertificateRow.status, CertificateRow.revoked_at, CertificateRow.revocation_reason).where(
    CertificateRow.ca_id == bindparam("ca_id"), CertificateRow.serial == bindparam("serial")
)
# The same lookup as plain SQL, for an SQLite database read through core.store.SQLiteReader (serials are stored
# as lower-case hex text: core.store.HexSerial).
_C = CertificateRow.__table__.c
_STATUS_SQL = (
    f"SELECT {_C.status.name}, {_C.revoked_at.name}, {_C.revocation_reason.name} "  # noqa: S608 - names from the model
    f"FROM {CertificateRow.__tablename__} WHERE {_C.ca_id.name} = ? AND {_C.serial.name} = ?"
)


@dataclasses.dataclass(frozen=True)
class OCSPAnswer:
    """A DER OCSP response and what the HTTP layer needs to serve it.

    ``status`` is ``good``, ``revoked``, ``unknown`` or, for an unsuccessful
    response, the OCSPResponseStatus name (``malformedRequest``,
    ``unauthorized`` ...).  ``cacheable`` is true for pre-signed responses
    (no nonce), which HTTP caches may keep until ``expires``.
    """

    der: bytes = dataclasses.field(repr=False)
    status: str
    produced_at: dt.datetime | None = None
    next_update: dt.datetime | None = None
    cacheable: bool = False

    @property
    def etag(self) -> str:
        return hashlib.sha256(self.der).hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class _Issuer:
    ca_id: int
    name: str
    signer: OCSPSigner
    signer_not_after: dt.datetime
    generation: int


@dataclasses.dataclass(frozen=True)
class _Cached:
    answer: OCSPAnswer
    state: State
    refresh_at: dt.datetime
    generation: int


_ERROR_NAMES = {
    OCSPResponseStatus.MALFORMED_REQUEST: "malformedRequest",
    OCSPResponseStatus.INTERNAL_ERROR: "internalError",
    OCSPResponseStatus.TRY_LATER: "tryLater",
    OCSPResponseStatus.SIG_REQUIRED: "sigRequired",
    OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}


def _error(status: OCSPResponseStatus) -> OCSPAnswer:
    return OCSPAnswer(build_ocsp_error(status), _ERROR_NAMES[status])


class OCSPResponder:
    """Answers OCSP requests for every CA in the database."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        keystore: KeyStore,
        clock: Clock,
        *,
        validity: dt.timedelta,
        cache_entries: int = 100_000,
        reload_interval: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.keystore = keystore
        self.clock = clock
        self.validity = validity
        self.cache_entries = cache_entries
        self.reload_interval = reload_interval
        self._issuers: dict[tuple[str, bytes, bytes], _Issuer] = {}
        self._loaded_from: dict[int, int | None] = {}
        self._generation = 0
        self._last_load = 0.0
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[tuple[int, int], dict[bytes, _Cached]] = collections.OrderedDict()
        engine = read_only_engine(sessions)
        self._status_reader = engine
        # On SQLite the status is read on a connection of its own, without SQLAlchemy: a few microseconds
        # instead of tens, and still the latest committed state (each lookup is its own read transaction).
        self._sqlite = sqlite_reader(engine)

    # -- issuers --------------------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)build the responders of every CA from the database and drop the cache if one changed."""
        with read_transaction(self.sessions) as session:
            rows = session.execute(
                select(
                    CertificateAuthorityRow.id,
                    CertificateAuthorityRow.name,
                    CertificateAuthorityRow.certificate_der,
                    CertificateAuthorityRow.ocsp_key_id,
                    CertificateAuthorityRow.ocsp_certificate_der,
                    CertificateAuthorityRow.ocsp_certificate_id,
                ).where(CertificateAuthorityRow.status != CA_PENDING)
            ).all()
        with self._lock:
            self._last_load = time.monotonic()
            loaded = {row.id: row.ocsp_certificate_id for row in rows}
            if loaded == self._loaded_from:
                return
            self._generation += 1
            generation = self._generation
        issuers: dict[tuple[str, bytes, bytes], _Issuer] = {}
        for row in rows:
            if not row.ocsp_key_id or not row.ocsp_certificate_der:
                continue
            responder = x509.load_der_x509_certificate(row.ocsp_certificate_der)
            signer = OCSPSigner.create(responder, self.keystore.private_key(row.ocsp_key_id))
            issuer = _Issuer(row.id, row.name, signer, responder.not_valid_after_utc, generation)
            ca_certificate = x509.load_der_x509_certificate(row.certificate_der)
            for key in IssuerHashes.from_certificate(ca_certificate).lookup_keys():
                issuers[key] = issuer
        with self._lock:
            self._issuers = issuers
            self._loaded_from = loaded
            self._cache.clear()
        log.info("OCSP responders loaded", extra={"responders": len({i.ca_id for i in issuers.values()})})

    def reload_if_changed(self) -> None:
        """Pick up CAs and responder certificates created or renewed on another node."""
        self.load()

    def _issuer(self, key: tuple[str, bytes, bytes]) -> _Issuer | None:
        issuer = self._issuers.get(key)
        if issuer is None and time.monotonic() - self._last_load >= self.reload_interval:
            # A CA created on another node since we last looked; reload at most every few seconds.
            self.load()
            issuer = self._issuers.get(key)
        return issuer

    # -- cache ----------------------------------------------------------------------------------------
    # Keyed by (CA, serial) so that a revoke drops a certificate's entries in constant time; each entry
    # holds one response per CertID encoding (clients hash the issuer with different algorithms).

    def invalidate(self, ca_id: int, serial: int) -> None:
        """Drop the pre-signed responses of one certificate (after a revoke, hold or release)."""
        with self._lock:
            self._cache.pop((ca_id, serial), None)

    def _cache_get(self, ca_id: int, serial: int, cert_id: bytes) -> _Cached | None:
        with self._lock:
            entries = self._cache.get((ca_id, serial))
            if entries is None:
                return None
            self._cache.move_to_end((ca_id, serial))
            return entries.get(cert_id)

    def _cache_put(self, ca_id: int, serial: int, cert_id: bytes, entry: _Cached) -> None:
        if self.cache_entries <= 0:
            return
        with self._lock:
            entries = self._cache.setdefault((ca_id, serial), {})
            entries[cert_id] = entry
            self._cache.move_to_end((ca_id, serial))
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)

    # -- answering ------------------------------------------------------------------------------------

    def _state(self, ca_id: int, serial: int) -> State:
        if serial <= 0 or serial.bit_length() > 160:
            return None
        # A snapshot read: on SQLite it takes no lock, so answers never queue behind issuance or revocation.
        parameters = {"ca_id": ca_id, "serial": serial}
        if self._sqlite is not None:
            found = self._sqlite.one(_STATUS_SQL, (ca_id, format(serial, "x")))
            if found is None or found[0] not in (ISSUED, REVOKED, HOLD):
                return None
            return (found[0], sqlite_datetime(found[1]), found[2])
        try:
            if self._status_reader is not None:
                with self._status_reader.connect() as connection:
                    row = connection.execute(_STATUS, parameters).first()
            else:
                with read_transaction(self.sessions) as session:
                    row = session.connection().execute(_STATUS, parameters).first()
        except OperationalError as e:
            raise DatabaseUnavailable("the database did not answer") from e
        if row is None or row.status not in (ISSUED, REVOKED, HOLD):
            return None
        return (row.status, row.revoked_at, row.revocation_reason)

    @staticmethod
    def _status(state: State) -> CertificateStatus:
        if state is None:
            return CertificateStatus.unknown()
        status, revoked_at, reason = state
        if status == ISSUED:
            return CertificateStatus.good()
        assert revoked_at is not None
        flag = x509.ReasonFlags(reason) if reason else None
        if status == HOLD:
            flag = x509.ReasonFlags.certificate_hold
        return CertificateStatus.revoked(revoked_at, flag)

    def respond(self, request: bytes) -> OCSPAnswer:
        """Answer a DER OCSP request; never raises (failures become unsuccessful OCSP responses)."""
        try:
            return self._respond(request)
        except OCSPError as e:
            return _error(e.ocsp_status)
        except DatabaseUnavailable:
            log.warning("OCSP: database unavailable")
            return _error(OCSPResponseStatus.TRY_LATER)
        except HengxinError as e:
            log.error("OCSP: cannot answer", extra={"code": e.code})
            return _error(OCSPResponseStatus.INTERNAL_ERROR)

    def _respond(self, request: bytes) -> OCSPAnswer:
        try:
            info = parse_ocsp_request(request)
        except OCSPMalformedRequest:
            return _error(OCSPResponseStatus.MALFORMED_REQUEST)
        cert_id = info.cert_id
        issuer = self._issuer(cert_id.issuer_lookup_key)
        if issuer is None:
            return _error(OCSPResponseStatus.UNAUTHORIZED)
        state = self._state(issuer.ca_id, cert_id.serial)
        now = self.clock()
        if info.nonce is None and state is not None:
            cached = self._cache_get(issuer.ca_id, cert_id.serial, cert_id.der)
            if (
                cached is not None
                and cached.state == state
                and cached.generation == issuer.generation
                and now < cached.refresh_at
            ):
                return cached.answer
        status = self._status(state)
        this_update = now.replace(microsecond=0)
        next_update = min(this_update + self.validity, issuer.signer_not_after)
        if next_update <= this_update:
            # The responder certificate has expired and was not renewed: refuse rather than lie.
            log.error("OCSP responder certificate expired", extra={"ca": issuer.name})
            return _error(OCSPResponseStatus.TRY_LATER)
        der = build_ocsp_response(
            cert_id,
            status,
            issuer.signer,
            produced_at=this_update,
            this_update=this_update,
            next_update=next_update,
            nonce=info.nonce,
        )
        answer = OCSPAnswer(
            der,
            status.status.name.lower(),
            produced_at=this_update,
            next_update=next_update,
            cacheable=info.nonce is None,
        )
        if info.nonce is None and state is not None:
            refresh_at = this_update + (next_update - this_update) / 2
            entry = _Cached(answer, state, refresh_at, issuer.generation)
            self._cache_put(issuer.ca_id, cert_id.serial, cert_id.der, entry)
        return answer

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"responders": len({i.ca_id for i in self._issuers.values()}), "cached": len(self._cache)}

"""The RFC 3161 / RFC 5816 timestamp authority.

:class:`TSAService` turns a DER ``TimeStampReq`` into a DER ``TimeStampResp``.
It never raises for anything a client sends: malformed input, refused
algorithms and policies, an unhealthy clock and even its own failures become a
``rejection`` response carrying the matching ``PKIFailureInfo``, so an HTTP
layer can always return the bytes.

Everything that is the same in every token (certificate set, signer
identifier, algorithm identifiers, the ESSCertIDv2 attribute, the rejection
responses) is encoded once in the constructor (see :mod:`timestamp.encoding`),
so per token only the TSTInfo, the message-digest attribute, the signature and
the thin wrappers are encoded.  Each token is checked before it leaves: its
signature is verified with the TSA certificate's public key and its TSTInfo is
read back and compared with the request.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import core, tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from timestamp import der
from timestamp.algorithms import (
    HASH_ALGORITHMS_BY_OID,
    REFUSED_HASH_OIDS,
    HashAlgorithm,
    Signer,
    signature_scheme,
)
from timestamp.asn1 import TimeStampResp
from timestamp.encoding import EncodedToken, TokenEncoder
from timestamp.errors import TSAConfigurationError
from timestamp.policy import TSAPolicy

logger = logging.getLogger(__name__)

# A serial number source returns a positive integer never returned before.
SerialNumberSource = Callable[[], int]
Clock = Callable[[], datetime]
ClockCheck = Callable[[], bool]

_MAX_SERIAL_BITS = 160  # RFC 3161 2.4.2: clients must handle serials up to 160 bits.


def random_serial_number() -> int:
    """Return a random positive 128-bit serial number.

    Collisions are negligible (2^-64 after 2^32 tokens); the store still keeps a
    unique constraint on serials.
    """
    return secrets.randbits(127) | (1 << 127)


def system_clock() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def always_healthy() -> bool:
    """Clock check for a TSA without clock discipline (tests, development)."""
    return True


class Failure(enum.Enum):
    """PKIFailureInfo values (RFC 3161 2.4.2): RFC name and asn1crypto name."""

    BAD_ALG = ("badAlg", "bad_alg", "unrecognized or unsupported hash algorithm")
    BAD_REQUEST = ("badRequest", "bad_request", "transaction not permitted or supported")
    BAD_DATA_FORMAT = ("badDataFormat", "bad_data_format", "the request is malformed")
    TIME_NOT_AVAILABLE = ("timeNotAvailable", "time_not_available", "the TSA time source is not available")
    UNACCEPTED_POLICY = ("unacceptedPolicy", "unaccepted_policy", "the requested policy is not supported")
    UNACCEPTED_EXTENSION = ("unacceptedExtension", "unaccepted_extensions", "the requested extension is not supported")
    SYSTEM_FAILURE = ("systemFailure", "system_failure", "the request cannot be handled due to system failure")

    @property
    def rfc_name(self) -> str:
        """The name RFC 3161 gives this failure (``badAlg``)."""
        return self.value[0]

    @property
    def asn1_name(self) -> str:
        """The asn1crypto name of this failure bit (``bad_alg``)."""
        return self.value[1]

    @property
    def status_text(self) -> str:
        """The PKIFreeText the response carries for this failure."""
        return self.value[2]


@dataclass(frozen=True)
class TimestampRecord:
    """What happened to one request, for the caller to store and audit.

    ``status`` is ``granted`` or ``rejection``; on rejection ``failure`` is the
    RFC 3161 failure name and ``reason`` a more specific English explanation,
    and the fields the request did not provide or that were never assigned
    (serial, gen_time) are ``None``.  ``message_imprint`` is lower-case hex and
    ``hash_algorithm`` the asn1crypto name (``sha256``) or, if unknown, the
    dotted OID.
    """

    status: str
    serial_number: int | None
    message_imprint: str | None
    hash_algorithm: str | None
    policy: str | None
    gen_time: datetime | None
    nonce: int | None
    requester: str | None
    cert_req: bool = False
    failure: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TSAResponse:
    """The DER ``TimeStampResp`` to return, its token if granted, and the audit record."""

    der: bytes
    record: TimestampRecord
    token: bytes | None = None

    @property
    def granted(self) -> bool:
        """Whether the response carries a timestamp token."""
        return self.token is not None


class _Rejected(Exception):
    """Control flow inside :meth:`TSAService.respond`; never escapes it."""

    def __init__(self, failure: Failure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


@dataclass
class _ParsedRequest:
    hash_algorithm: HashAlgorithm | None = None
    hash_name: str | None = None
    null_parameters: bool = False
    imprint: bytes | None = None
    policy: str | None = None
    nonce: int | None = None
    cert_req: bool = False


class TSAService:
    """An RFC 3161 timestamp authority with RFC 5816 (ESSCertIDv2) tokens.

    ``signer`` is the TSA private key or a key-store adapter subclassing the
    matching ``cryptography`` private key class; only ``sign()`` and
    ``public_key()`` are called on it.  ``certificate`` is the TSA certificate
    (extended key usage exactly timeStamping, critical) and ``chain`` the
    certificates above it that a client needs (intermediates, optionally the
    root), sent when the request asks for certificates.

    ``serial_numbers`` returns a fresh positive integer per token (default:
    128 random bits); ``clock`` returns the current timezone-aware time;
    ``clock_check`` returns whether the clock is known to be within the
    declared accuracy (``ClockMonitor.is_healthy``) and is called once per
    request, so it must be cheap.

    Raises :class:`TSAConfigurationError` when the key does not match the
    certificate, the certificate is not a TSA certificate, or the key type is
    unsupported.
    """

    def __init__(
        self,
        signer: Signer,
        certificate: x509.Certificate,
        policy: TSAPolicy,
        chain: Sequence[x509.Certificate] = (),
        *,
        serial_numbers: SerialNumberSource = random_serial_number,
        clock: Clock = system_clock,
        clock_check: ClockCheck = always_healthy,
    ) -> None:
        self.policy = policy
        self.certificate = certificate
        self.chain = tuple(c for c in chain if c != certificate)
        self._serial_numbers = serial_numbers
        self._clock = clock
        self._clock_check = clock_check
        self._precision = policy.precision_digits

        certificate_key = certificate.public_key()
        spki = certificate_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if signer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != spki:
            raise TSAConfigurationError(
                "the TSA key does not match the TSA certificate", detail_zh="时间戳服务密钥与证书不匹配"
            )
        _check_tsa_certificate(certificate)
        self._scheme = signature_scheme(signer, certificate_key, policy.signature_digest)  # type: ignore[arg-type]
        self._not_before = certificate.not_valid_before_utc
        self._not_after = certificate.not_valid_after_utc

        self._prepare()

    # -- prepared once -------------------------------------------------------

    def _prepare(self) -> None:
        """Build and encode everything that is the same in every token."""
        certificate_der = self.certificate.public_bytes(Encoding.DER)
        self._accepted_policies = frozenset(self.policy.accepted_policies)
        self._hash_names = {h.oid: h for h in HASH_ALGORITHMS_BY_OID.values() if h.name in self.policy.hash_algorithms}
        # The content octets of each accepted OID, for reading common requests without asn1crypto.
        self._hashes_by_encoded_oid = {core.ObjectIdentifier(oid).contents: h for oid, h in self._hash_names.items()}
        self._policies_by_encoded_oid = {core.ObjectIdentifier(oid).contents: oid for oid in self._accepted_policies}
        self._encoder = TokenEncoder(
            certificate_der,
            [certificate_der] + [c.public_bytes(Encoding.DER) for c in self.chain],
            self._scheme,
            sorted(self.policy.accepted_policies),
            list(self._hash_names.values()),
            self.policy.accuracy,
            include_tsa_name=self.policy.include_tsa_name,
            include_signing_time=self.policy.include_signing_time,
        )
        self._rejections = {
            failure: TimeStampResp(
                {
                    "status": {
                        "status": "rejection",
                        "status_string": [failure.status_text],
                        "fail_info": tsp.PKIFailureInfo({failure.asn1_name}),
                    }
                }
            ).dump()
            for failure in Failure
        }

    # -- per request ---------------------------------------------------------

    def respond(self, request_der: bytes, requester: str | None = None) -> TSAResponse:
        """Answer one DER ``TimeStampReq`` with a DER ``TimeStampResp``.

        Never raises: a malformed request yields ``badDataFormat``, an
        unsupported or refused hash ``badAlg``, an unknown policy
        ``unacceptedPolicy``, any request extension ``unacceptedExtension``, an
        unhealthy clock ``timeNotAvailable``, and a failure of the signer, the
        serial source or the self-check of the finished token
        ``systemFailure``.  A granted token has been verified against the TSA
        certificate before it is returned.
        """
        parsed = _ParsedRequest()
        try:
            self._parse(request_der, parsed)
            if not self._clock_is_healthy():
                raise _Rejected(Failure.TIME_NOT_AVAILABLE, "the TSA clock is not within its declared accuracy")
            return self._grant(parsed, requester)
        except _Rejected as rejected:
            return self._reject(rejected.failure, rejected.reason, parsed, requester)
        except Exception:
            logger.exception("timestamp token could not be issued")
            return self._reject(Failure.SYSTEM_FAILURE, "internal error while issuing the token", parsed, requester)

    def _clock_is_healthy(self) -> bool:
        """Ask the clock check; a check that raises counts as unhealthy."""
        try:
            return bool(self._clock_check())
        except Exception:
            logger.exception("the clock check failed")
            return False

    def _parse(self, request_der: bytes, parsed: _ParsedRequest) -> None:
        """Fill ``parsed`` from the request, raising :class:`_Rejected` on the first problem."""
        if self._parse_common(request_der, parsed):
            return
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            version = request["version"].native
            message_imprint = request["message_imprint"]
            algorithm = message_imprint["hash_algorithm"]
            oid = algorithm["algorithm"].dotted
            try:
                parameters = algorithm["parameters"]
            except (ValueError, TypeError):
                parameters = None  # neither absent nor NULL: asn1crypto refuses other values for SHA-2
            imprint = message_imprint["hashed_message"].native
            policy = request["req_policy"]
            nonce = request["nonce"].native
            cert_req = bool(request["cert_req"].native)
            extensions = request["extensions"]
            has_extensions = bool(extensions.native) if extensions else False
            policy_oid = policy.dotted if policy else None
            if not isinstance(imprint, bytes):
                raise ValueError("message imprint is not an OCTET STRING")
        except _Rejected:
            raise
        except Exception as e:
            raise _Rejected(Failure.BAD_DATA_FORMAT, f"malformed TimeStampReq: {type(e).__name__}") from None

        h = self._hash_names.get(oid)
        parsed.hash_algorithm = h
        parsed.hash_name = h.name if h else REFUSED_HASH_OIDS.get(oid, oid)
        parsed.imprint = imprint
        parsed.policy = policy_oid
        parsed.nonce = nonce
        parsed.cert_req = cert_req
        if version != "v1":
            raise _Rejected(Failure.BAD_DATA_FORMAT, f"unsupported request version {version}")
        if h is None:
            if oid in REFUSED_HASH_OIDS:
                raise _Rejected(Failure.BAD_ALG, f"hash algorithm {REFUSED_HASH_OIDS[oid]} is refused")
            raise _Rejected(Failure.BAD_ALG, f"hash algorithm {oid} is not accepted")
        if isinstance(parameters, core.Null):
            parsed.null_parameters = True
        elif not isinstance(parameters, core.Void):  # also None, see above
            raise _Rejected(Failure.BAD_ALG, "hash algorithm parameters must be absent or NULL")
        if len(imprint) != h.digest_size:
            raise _Rejected(
                Failure.BAD_DATA_FORMAT, f"message imprint is {len(imprint)} bytes, {h.name} needs {h.digest_size}"
            )
        if policy_oid is not None and policy_oid not in self._accepted_policies:
            raise _Rejected(Failure.UNACCEPTED_POLICY, f"policy {policy_oid} is not accepted")
        if has_extensions:
            raise _Rejected(Failure.UNACCEPTED_EXTENSION, "request extensions are not supported")

    def _parse_common(self, request_der: bytes, parsed: _ParsedRequest) -> bool:
        """Read a request of the common, acceptable shape straight from its bytes; False for anything else.

        The shape: DER, version 1, an accepted hash with absent or NULL
        parameters and a digest of its size, an accepted policy or none, a
        nonce or none, certReq or not, no extensions.  Whatever does not fit
        (including every request that is to be rejected) returns False without
        touching ``parsed``, and :meth:`_parse` then reads it with asn1crypto,
        which decides what it means; so this path gives the same answer, only
        sooner.
        """
        try:
            top = der.Reader(request_der)
            request = top.enter(der.SEQUENCE)
            top.finish()
            if request.content(der.INTEGER) != b"\x01":
                return False
            imprint_reader = request.enter(der.SEQUENCE)
            algorithm = imprint_reader.enter(der.SEQUENCE)
            h = self._hashes_by_encoded_oid.get(algorithm.content(der.OBJECT_IDENTIFIER))
            null_parameters = not algorithm.at_end()
            if null_parameters and algorithm.content(der.NULL) != b"":
                return False
            algorithm.finish()
            imprint = imprint_reader.content(der.OCTET_STRING)
            imprint_reader.finish()
            if h is None or len(imprint) != h.digest_size:
                return False
            policy = None
            if request.peek() == der.OBJECT_IDENTIFIER:
                policy = self._policies_by_encoded_oid.get(request.content(der.OBJECT_IDENTIFIER))
                if policy is None:
                    return False
            nonce = request.integer() if request.peek() == der.INTEGER else None
            cert_req = False
            if request.peek() == der.BOOLEAN:
                flag = request.content(der.BOOLEAN)
                if flag not in (b"\x00", b"\xff"):
                    return False
                cert_req = flag == b"\xff"
            request.finish()  # extensions [0] (refused) or anything else: the general path
        except ValueError:
            return False
        parsed.hash_algorithm = h
        parsed.hash_name = h.name
        parsed.null_parameters = null_parameters
        parsed.imprint = imprint
        parsed.policy = policy
        parsed.nonce = nonce
        parsed.cert_req = cert_req
        return True

    def _now(self) -> datetime:
        """The injected clock in UTC, truncated to the configured genTime precision.

        Raises ``ValueError`` for a naive datetime (turned into ``systemFailure``).
        """
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the TSA clock returned a naive datetime")
        now = now.astimezone(UTC)
        if self._precision < 6:
            step = 10 ** (6 - self._precision)
            now = now.replace(microsecond=now.microsecond - now.microsecond % step)
        return now

    def _grant(self, parsed: _ParsedRequest, requester: str | None) -> TSAResponse:
        h = parsed.hash_algorithm
        imprint = parsed.imprint
        assert h is not None and imprint is not None  # set by _parse() for every request that gets here
        serial = self._serial_numbers()
        if not isinstance(serial, int) or serial <= 0 or serial.bit_length() > _MAX_SERIAL_BITS:
            raise ValueError("the serial number source returned an unusable value")
        gen_time = self._now()
        if not self._not_before <= gen_time <= self._not_after:
            raise ValueError("the TSA certificate is not valid at the current time")
        policy_oid = parsed.policy or self.policy.default_policy

        encoded = self._encoder.encode(
            hash_algorithm=h,
            null_parameters=parsed.null_parameters,
            imprint=imprint,
            policy=policy_oid,
            serial_number=serial,
            gen_time=gen_time,
            nonce=parsed.nonce,
            cert_req=parsed.cert_req,
        )
        self._self_check(encoded, imprint, serial, parsed.nonce)

        record = TimestampRecord(
            status="granted",
            serial_number=serial,
            message_imprint=imprint.hex(),
            hash_algorithm=h.name,
            policy=policy_oid,
            gen_time=gen_time,
            nonce=parsed.nonce,
            requester=requester,
            cert_req=parsed.cert_req,
        )
        return TSAResponse(der=encoded.response, record=record, token=encoded.token)

    def _self_check(self, encoded: EncodedToken, imprint: bytes, serial: int, nonce: int | None) -> None:
        """Verify the token's signature with the TSA certificate and re-read its TSTInfo.

        Raises (and so turns into ``systemFailure``) when the key store signed
        with another key or returned garbage, when the signed attributes do not
        carry the digest of the TSTInfo, or when the TSTInfo does not say what
        the request asked for.  It works on the exact byte strings the token
        was assembled from, so it costs one signature verification and one
        small parse instead of re-parsing the whole token.
        """
        self._scheme.verify(encoded.signature, encoded.signed_attributes)
        if self._scheme.digest.digest(encoded.tst_info) not in encoded.signed_attributes:
            raise ValueError("the signed attributes do not carry the digest of the TSTInfo")
        # TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime,
        #                        accuracy OPTIONAL, ordering DEFAULT FALSE, nonce OPTIONAL, ... }
        top = der.Reader(encoded.tst_info)
        tst_info = top.enter(der.SEQUENCE)
        top.finish()
        if tst_info.integer() != 1:
            raise ValueError("the encoded TSTInfo has another version")
        tst_info.read(der.OBJECT_IDENTIFIER)
        message_imprint = tst_info.enter(der.SEQUENCE)
        message_imprint.read(der.SEQUENCE)
        encoded_imprint = message_imprint.content(der.OCTET_STRING)
        message_imprint.finish()
        encoded_serial = tst_info.integer()
        tst_info.read(der.GENERALIZED_TIME)
        if tst_info.peek() == der.SEQUENCE:
            tst_info.read(der.SEQUENCE)
        if tst_info.peek() == der.BOOLEAN:
            tst_info.read(der.BOOLEAN)
        encoded_nonce = tst_info.integer() if tst_info.peek() == der.INTEGER else None
        if encoded_imprint != imprint or encoded_serial != serial or encoded_nonce != nonce:
            raise ValueError("the encoded TSTInfo does not match the request")

    def reject(self, failure: Failure, reason: str, requester: str | None = None) -> TSAResponse:
        """Return the rejection response for ``failure`` without looking at any request.

        For a front door that refuses a request before parsing it (too large,
        wrong content type, rate limited: ``Failure.BAD_REQUEST``) but still
        answers with a ``TimeStampResp``.  Never raises.
        """
        return self._reject(failure, reason, _ParsedRequest(), requester)

    def _reject(self, failure: Failure, reason: str, parsed: _ParsedRequest, requester: str | None) -> TSAResponse:
        record = TimestampRecord(
            status="rejection",
            serial_number=None,
            message_imprint=parsed.imprint.hex() if parsed.imprint is not None else None,
            hash_algorithm=parsed.hash_name,
            policy=parsed.policy,
            gen_time=None,
            nonce=parsed.nonce,
            requester=requester,
            cert_req=parsed.cert_req,
            failure=failure.rfc_name,
            reason=reason,
        )
        return TSAResponse(der=self._rejections[failure], record=record)


def _check_tsa_certificate(certificate: x509.Certificate) -> None:
    """Require extended key usage exactly timeStamping, critical (RFC 3161 2.3).

    Raises :class:`TSAConfigurationError` otherwise.
    """
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or not eku.critical or list(eku.value) != [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TSAConfigurationError(
            "the TSA certificate needs extended key usage exactly timeStamping, marked critical",
            detail_zh="时间戳服务证书的扩展密钥用法必须仅为 timeStamping 且为关键扩展",
        )

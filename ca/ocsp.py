"""OCSP request parsing and response building (RFC 6960, RFC 5019, RFC 8954).

Requests are parsed and responses encoded here with a small strict DER reader
and writer rather than with ``cryptography``'s OCSP classes, for three reasons:

* ``cryptography``'s response builder stamps ``producedAt`` with the wall
  clock, and building a response must be a function of its inputs and a clock;
* the response must repeat the request's CertID byte for byte (OpenSSL
  compares the hash AlgorithmIdentifier including its parameters, which
  clients encode differently), so the parser keeps each CertID's DER;
* the responder is on the hot path: everything that does not depend on the
  request (responder ID, signature algorithm, certificates) is encoded once in
  :class:`OCSPSigner`, leaving one hash and one signature per response.

Multiple requests: a request may list several certificates.  All CertIDs are
parsed (``OCSPRequestInfo.cert_ids``); the first one is the one the fields of
:class:`OCSPRequestInfo` describe.  :func:`build_ocsp_response` answers one
CertID per response, which is what RFC 5019 clients send and what the
``cryptography`` and OpenSSL clients check; the service answers the first.

Signed requests are accepted and their signature is ignored: the responder
does not require signed requests (RFC 6960 section 4.1.2 makes it optional).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Callable, Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus
from cryptography.x509.oid import ExtendedKeyUsageOID

from ca._common import require_utc, subject_public_key_bits
from ca.errors import CAError, IssuerInvalid, OCSPMalformedRequest

__all__ = [
    "MAX_NONCE_LENGTH",
    "MAX_REQUEST_SIZE",
    "CertID",
    "CertificateStatus",
    "IssuerHashes",
    "OCSPRequestInfo",
    "OCSPSigner",
    "build_ocsp_error",
    "build_ocsp_response",
    "parse_ocsp_request",
]

# RFC 8954 section 2.1: Nonce ::= OCTET STRING(SIZE(1..32)).
MAX_NONCE_LENGTH = 32
# A request for one certificate is about 100 octets; a few hundred CertIDs at most.
MAX_REQUEST_SIZE = 64 * 1024

_HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
_HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
_NONCE_OID = "1.3.6.1.5.5.7.48.1.2"
_BASIC_RESPONSE_OID = "1.3.6.1.5.5.7.48.1.1"

# CRLReason ::= ENUMERATED (RFC 5280 section 5.3.1).
_REASON_CODES = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}


# --- DER ------------------------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _sequence(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _generalized_time(value: datetime.datetime) -> bytes:
    return _tlv(0x18, value.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def _decode_oid(content: bytes) -> str:
    if not content or content[-1] & 0x80:
        raise ValueError("bad OID")
    arcs: list[int] = []
    value = 0
    for i, byte in enumerate(content):
        if value == 0 and byte == 0x80 and (i == 0 or not content[i - 1] & 0x80):
            raise ValueError("non-minimal OID arc")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


class _Reader:
    """A strict DER walker over ``data[start:end]``: definite, minimal lengths, one-octet tags."""

    __slots__ = ("data", "end", "position")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.position = start
        self.end = len(data) if end is None else end

    def at_end(self) -> bool:
        return self.position >= self.end

    def peek_tag(self) -> int | None:
        return None if self.at_end() else self.data[self.position]

    def read(self, expected_tag: int) -> tuple[int, int, int]:
        """Read one element with ``expected_tag``; return (header start, content start, content end)."""
        data, start = self.data, self.position
        if start + 2 > self.end or data[start] != expected_tag:
            raise ValueError("unexpected tag")
        first = data[start + 1]
        position = start + 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or position + count > self.end:
                raise ValueError("bad length")
            length = int.from_bytes(data[position : position + count], "big")
            if length < 0x80 or data[position] == 0:
                raise ValueError("non-minimal length")
            position += count
        content_end = position + length
        if content_end > self.end:
            raise ValueError("truncated")
        self.position = content_end
        return start, position, content_end

    def read_content(self, expected_tag: int) -> bytes:
        _, start, end = self.read(expected_tag)
        return self.data[start:end]

    def enter(self, expected_tag: int) -> _Reader:
        _, start, end = self.read(expected_tag)
        return _Reader(self.data, start, end)

    def finish(self) -> None:
        if not self.at_end():
            raise ValueError("trailing data")


# --- values ---------------------------------------------------------------------------------------------


def _issuer_hash(algorithm: str, data: bytes) -> bytes:
    return _HASHES[algorithm](data).digest()


@dataclasses.dataclass(frozen=True)
class CertID:
    """The identity of a certificate asked about (RFC 6960 section 4.1.1).

    ``hash_algorithm`` is ``sha1``, ``sha256``, ``sha384``, ``sha512`` or,
    for any other algorithm, its dotted OID (such a CertID matches no
    issuer).  ``der`` is the CertID exactly as encoded, repeated in the
    response.
    """

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes = dataclasses.field(repr=False, compare=False)

    @property
    def issuer_lookup_key(self) -> tuple[str, bytes, bytes]:
        """(algorithm, name hash, key hash): a key to find the issuer in a mapping built from
        :meth:`IssuerHashes.lookup_keys`."""
        return (self.hash_algorithm, self.issuer_name_hash, self.issuer_key_hash)

    @classmethod
    def create(cls, issuer_cert: x509.Certificate, serial: int, hash_algorithm: str = "sha1") -> CertID:
        """The CertID of serial number ``serial`` of ``issuer_cert`` (to pre-produce responses).

        Raises:
            CAError: unknown hash algorithm.
        """
        if hash_algorithm not in _HASHES:
            raise CAError(f"unsupported CertID hash algorithm {hash_algorithm!r}")
        oid = next(o for o, name in _HASH_OIDS.items() if name == hash_algorithm)
        name_hash = _issuer_hash(hash_algorithm, issuer_cert.subject.public_bytes())
        key_hash = _issuer_hash(hash_algorithm, subject_public_key_bits(issuer_cert.public_key()))
        serial_bytes = serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True)
        der = _sequence(
            _sequence(_oid(oid), b"\x05\x00"),
            _tlv(0x04, name_hash),
            _tlv(0x04, key_hash),
            _tlv(0x02, serial_bytes),
        )
        return cls(hash_algorithm, name_hash, key_hash, serial, der)


@dataclasses.dataclass(frozen=True)
class OCSPRequestInfo:
    """What an OCSP request asks.

    The CertID fields (``hash_algorithm``, ``issuer_name_hash``,
    ``issuer_key_hash``, ``serial``) are those of the first certificate
    asked about; ``cert_ids`` holds them all in request order.  ``nonce`` is
    the value of the RFC 8954 nonce (1 to 32 octets) or ``None``.
    """

    cert_ids: tuple[CertID, ...]
    nonce: bytes | None = None

    @property
    def cert_id(self) -> CertID:
        """The first CertID of the request."""
        return self.cert_ids[0]

    @property
    def hash_algorithm(self) -> str:
        """The first CertID's hash algorithm."""
        return self.cert_ids[0].hash_algorithm

    @property
    def issuer_name_hash(self) -> bytes:
        """The first CertID's issuer name hash."""
        return self.cert_ids[0].issuer_name_hash

    @property
    def issuer_key_hash(self) -> bytes:
        """The first CertID's issuer key hash."""
        return self.cert_ids[0].issuer_key_hash

    @property
    def serial(self) -> int:
        """The first CertID's serial number."""
        return self.cert_ids[0].serial


@dataclasses.dataclass(frozen=True)
class IssuerHashes:
    """The OCSP issuer hashes of a CA certificate, for SHA-1, SHA-256, SHA-384 and SHA-512 CertIDs.

    Compute once per CA (:meth:`from_certificate`), then match requests
    against it (:meth:`matches`) or index several CAs by
    :meth:`lookup_keys`.
    """

    hashes: frozenset[tuple[str, bytes, bytes]]

    @classmethod
    def from_certificate(cls, ca_cert: x509.Certificate) -> IssuerHashes:
        """Hash the certificate's subject name (DER) and subjectPublicKey bits with every supported algorithm."""
        name = ca_cert.subject.public_bytes()
        key = subject_public_key_bits(ca_cert.public_key())
        return cls(frozenset((alg, _issuer_hash(alg, name), _issuer_hash(alg, key)) for alg in _HASHES))

    def matches(self, cert_id: CertID) -> bool:
        """Whether ``cert_id`` names this CA as issuer."""
        return cert_id.issuer_lookup_key in self.hashes

    def lookup_keys(self) -> Iterator[tuple[str, bytes, bytes]]:
        """The (algorithm, name hash, key hash) keys of this CA, one per algorithm."""
        return iter(self.hashes)


@dataclasses.dataclass(frozen=True)
class CertificateStatus:
    """The status reported for one certificate: good, revoked (time, reason) or unknown."""

    status: OCSPCertStatus
    revocation_time: datetime.datetime | None = None
    revocation_reason: x509.ReasonFlags | None = None

    def __post_init__(self) -> None:
        if self.status is OCSPCertStatus.REVOKED:
            if self.revocation_time is None:
                raise CAError("a revoked status needs a revocation time")
            object.__setattr__(self, "revocation_time", require_utc(self.revocation_time, "revocation_time"))
            if self.revocation_reason is x509.ReasonFlags.remove_from_crl:
                raise CAError("removeFromCRL is not a revocation reason")
        elif self.revocation_time is not None or self.revocation_reason is not None:
            raise CAError("only a revoked status has a revocation time and reason")

    @classmethod
    def good(cls) -> CertificateStatus:
        """Not revoked."""
        return cls(OCSPCertStatus.GOOD)

    @classmethod
    def revoked(cls, time: datetime.datetime, reason: x509.ReasonFlags | None = None) -> CertificateStatus:
        """Revoked at ``time``; ``reason`` ``None`` or unspecified is sent without a reason."""
        return cls(OCSPCertStatus.REVOKED, time, reason)

    @classmethod
    def unknown(cls) -> CertificateStatus:
        """The responder does not know the certificate."""
        return cls(OCSPCertStatus.UNKNOWN)


@dataclasses.dataclass(frozen=True)
class OCSPSigner:
    """A delegated OCSP responder: its certificate and key, with what does not change between
    responses encoded once.

    Build it with :meth:`create`.  The key may be a key-store key that only
    implements ``sign()`` and ``public_key()``.
    """

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes = dataclasses.field(repr=False)
    responder_id: bytes = dataclasses.field(repr=False)
    signature_algorithm: bytes = dataclasses.field(repr=False)
    certificates: bytes = dataclasses.field(repr=False)
    sign: Callable[[bytes], bytes] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def create(cls, certificate: x509.Certificate, key: CertificateIssuerPrivateKeyTypes) -> OCSPSigner:
        """Prepare a responder certificate and its key for signing responses.

        Raises:
            IssuerInvalid: the key does not belong to the certificate, the
                certificate lacks the OCSPSigning extended key usage, or the
                key type cannot sign.
        """
        public_key = certificate.public_key()
        if public_key != key.public_key():
            raise IssuerInvalid("the OCSP responder key does not belong to its certificate",
                                detail_zh="OCSP 响应器密钥与其证书不匹配")
        try:
            usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = x509.ExtendedKeyUsage([])
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            raise IssuerInvalid("the OCSP responder certificate lacks the OCSPSigning extended key usage",
                                detail_zh="OCSP 响应器证书缺少 OCSPSigning 扩展密钥用法")
        algorithm, sign = _signature_method(key)
        # ResponderID byKey: [2] EXPLICIT KeyHash, the SHA-1 hash of the responder's
        # subjectPublicKey bits (RFC 6960 section 4.2.1; SHA-1 is fixed there).
        key_hash = hashlib.sha1(subject_public_key_bits(public_key)).digest()  # noqa: S324
        return cls(
            certificate=certificate,
            key=key,
            responder_id=_tlv(0xA2, _tlv(0x04, key_hash)),
            signature_algorithm=algorithm,
            certificates=_tlv(0xA0, _sequence(certificate.public_bytes(Encoding.DER))),
            sign=sign,
        )


def _signature_method(key: CertificateIssuerPrivateKeyTypes) -> tuple[bytes, Callable[[bytes], bytes]]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve: dict[str, tuple[str, hashes.HashAlgorithm]] = {
            "secp256r1": ("1.2.840.10045.4.3.2", hashes.SHA256()),
            "secp384r1": ("1.2.840.10045.4.3.3", hashes.SHA384()),
            "secp521r1": ("1.2.840.10045.4.3.4", hashes.SHA512()),
        }
        if key.curve.name not in by_curve:
            raise IssuerInvalid(f"OCSP signing with curve {key.curve.name} is not supported")
        oid, digest = by_curve[key.curve.name]
        ecdsa = ec.ECDSA(digest)
        return _sequence(_oid(oid)), lambda data: key.sign(data, ecdsa)
    if isinstance(key, rsa.RSAPrivateKey):
        pkcs1 = padding.PKCS1v15()
        sha256 = hashes.SHA256()
        return _sequence(_oid("1.2.840.113549.1.1.11"), b"\x05\x00"), lambda data: key.sign(data, pkcs1, sha256)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _sequence(_oid("1.3.101.112")), key.sign
    raise IssuerInvalid(f"OCSP signing with {type(key).__name__} keys is not supported")


# --- parsing --------------------------------------------------------------------------------------------


def _malformed(detail: str, detail_zh: str) -> OCSPMalformedRequest:
    return OCSPMalformedRequest(detail, detail_zh=detail_zh)


def _parse_extensions(reader: _Reader) -> list[tuple[str, bool, bytes]]:
    """Parse ``Extensions ::= SEQUENCE OF Extension`` into (OID, critical, extnValue contents)."""
    extensions = []
    seen = set()
    sequence = reader.enter(0x30)
    while not sequence.at_end():
        extension = sequence.enter(0x30)
        oid = _decode_oid(extension.read_content(0x06))
        critical = False
        if extension.peek_tag() == 0x01:
            flag = extension.read_content(0x01)
            # DER: DEFAULT FALSE is omitted and TRUE is 0xFF; accept any non-zero octet as TRUE.
            if len(flag) != 1:
                raise ValueError("bad BOOLEAN")
            critical = flag != b"\x00"
        value = extension.read_content(0x04)
        extension.finish()
        if oid in seen:
            raise ValueError("duplicate extension")
        seen.add(oid)
        extensions.append((oid, critical, value))
    return extensions


def _parse_cert_id(reader: _Reader) -> CertID:
    header, start, end = reader.read(0x30)
    inner = _Reader(reader.data, start, end)
    algorithm = inner.enter(0x30)
    oid = _decode_oid(algorithm.read_content(0x06))
    if not algorithm.at_end():
        # Parameters: NULL or absent for the hash algorithms we know; keep any for others.
        if oid in _HASH_OIDS and algorithm.read_content(0x05) != b"":
            raise ValueError("bad hash parameters")
        algorithm.position = algorithm.end
    name_hash = inner.read_content(0x04)
    key_hash = inner.read_content(0x04)
    serial_bytes = inner.read_content(0x02)
    inner.finish()
    if not serial_bytes:
        raise ValueError("empty INTEGER")
    hash_algorithm = _HASH_OIDS.get(oid, oid)
    size = _DIGEST_SIZES.get(hash_algorithm)
    if size is not None and (len(name_hash) != size or len(key_hash) != size):
        raise ValueError("hash length does not match the algorithm")
    serial = int.from_bytes(serial_bytes, "big", signed=True)
    return CertID(hash_algorithm, name_hash, key_hash, serial, reader.data[header:end])


def parse_ocsp_request(der: bytes) -> OCSPRequestInfo:
    """Parse a DER OCSP request.

    Raises:
        OCSPMalformedRequest: not a DER OCSPRequest, an empty or oversized
            request list, version other than v1, an unknown critical
            extension, or a nonce that is not an OCTET STRING of 1 to 32
            octets (RFC 8954).
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise _malformed("an OCSP request must be bytes", "OCSP 请求必须是字节")
    data = bytes(der)
    if len(data) > MAX_REQUEST_SIZE:
        raise _malformed("the OCSP request is too large", "OCSP 请求过大")
    try:
        top = _Reader(data)
        request = top.enter(0x30)
        top.finish()
        tbs = request.enter(0x30)
        if tbs.peek_tag() == 0xA0:
            version = tbs.enter(0xA0)
            if version.read_content(0x02) != b"\x00":
                raise ValueError("unsupported version")
            version.finish()
        if tbs.peek_tag() == 0xA1:
            tbs.read(0xA1)  # requestorName: not used
        request_list = tbs.enter(0x30)
        cert_ids = []
        while not request_list.at_end():
            single = request_list.enter(0x30)
            cert_ids.append(_parse_cert_id(single))
            if single.peek_tag() == 0xA0:
                single_extensions = single.enter(0xA0)
                for _oid_text, critical, _value in _parse_extensions(single_extensions):
                    if critical:
                        raise ValueError("unknown critical single request extension")
                single_extensions.finish()
            single.finish()
        nonce = None
        if tbs.peek_tag() == 0xA2:
            request_extensions = tbs.enter(0xA2)
            for oid, critical, value in _parse_extensions(request_extensions):
                if oid == _NONCE_OID:
                    nonce_reader = _Reader(value)
                    nonce = nonce_reader.read_content(0x04)
                    nonce_reader.finish()
                elif critical:
                    raise ValueError("unknown critical request extension")
            request_extensions.finish()
        tbs.finish()
        if request.peek_tag() == 0xA0:
            request.read(0xA0)  # optionalSignature: signed requests are not required, so not checked
        request.finish()
    except (ValueError, IndexError) as e:
        raise _malformed("the OCSP request is not a valid DER OCSPRequest",
                         "OCSP 请求不是有效的 DER 编码 OCSPRequest") from e
    if not cert_ids:
        raise _malformed("the OCSP request asks about no certificate", "OCSP 请求未包含任何证书")
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_LENGTH:
        raise _malformed(f"the OCSP nonce must be 1 to {MAX_NONCE_LENGTH} octets (RFC 8954)",
                         f"OCSP 随机数长度必须为 1 到 {MAX_NONCE_LENGTH} 个八位组（RFC 8954）")
    return OCSPRequestInfo(tuple(cert_ids), nonce)


# --- responses ------------------------------------------------------------------------------------------


def _cert_status(status: CertificateStatus) -> bytes:
    if status.status is OCSPCertStatus.GOOD:
        return b"\x80\x00"
    if status.status is OCSPCertStatus.UNKNOWN:
        return b"\x82\x00"
    assert status.revocation_time is not None
    revoked = _generalized_time(status.revocation_time)
    reason = status.revocation_reason
    if reason is not None and reason is not x509.ReasonFlags.unspecified:
        revoked += _tlv(0xA0, _tlv(0x0A, bytes((_REASON_CODES[reason],))))
    return _tlv(0xA1, revoked)


def build_ocsp_response(
    cert_id: CertID,
    status: CertificateStatus,
    signer: OCSPSigner,
    *,
    produced_at: datetime.datetime,
    this_update: datetime.datetime,
    next_update: datetime.datetime,
    nonce: bytes | None = None,
) -> bytes:
    """Build a successful, signed OCSP response (DER) for one certificate.

    The BasicOCSPResponse names the responder by key hash, repeats
    ``cert_id`` as requested, includes the responder certificate, and echoes
    ``nonce`` when given.  Times must be timezone-aware; they are encoded as
    GeneralizedTime in whole seconds.

    Raises:
        CAError: naive datetimes, ``next_update`` not after ``this_update``,
            or a nonce outside 1 to 32 octets.
    """
    produced_at = require_utc(produced_at, "produced_at")
    this_update = require_utc(this_update, "this_update")
    next_update = require_utc(next_update, "next_update")
    if next_update <= this_update:
        raise CAError("next_update must be later than this_update")
    single = _sequence(
        cert_id.der,
        _cert_status(status),
        _generalized_time(this_update),
        _tlv(0xA0, _generalized_time(next_update)),
    )
    extensions = b""
    if nonce is not None:
        if not 1 <= len(nonce) <= MAX_NONCE_LENGTH:
            raise CAError("nonce must be 1 to 32 octets")
        nonce_extension = _sequence(_oid(_NONCE_OID), _tlv(0x04, _tlv(0x04, nonce)))
        extensions = _tlv(0xA1, _sequence(nonce_extension))
    response_data = _sequence(
        signer.responder_id, _generalized_time(produced_at), _sequence(single), extensions
    )
    signature = signer.sign(response_data)
    basic = _sequence(
        response_data, signer.signature_algorithm, _tlv(0x03, b"\x00" + signature), signer.certificates
    )
    response_bytes = _sequence(_oid(_BASIC_RESPONSE_OID), _tlv(0x04, basic))
    return _sequence(b"\x0a\x01\x00", _tlv(0xA0, response_bytes))


def build_ocsp_error(status: OCSPResponseStatus) -> bytes:
    """An unsuccessful OCSP response (DER): malformedRequest, internalError, tryLater, sigRequired or unauthorized.

    These responses are not signed (RFC 6960 section 2.3).

    Raises:
        CAError: ``status`` is ``SUCCESSFUL``.
    """
    if status is OCSPResponseStatus.SUCCESSFUL:
        raise CAError("an error response cannot have the status successful")
    return _sequence(_tlv(0x0A, bytes((status.value,))))

"""Verifying RFC 3161 timestamp tokens, ours or any other TSA's.

:func:`verify_token` checks one token (or a whole ``TimeStampResp``) and
raises a specific :class:`~timestamp.errors.TimestampError` for the first
problem it finds; it returns what the token says only when everything holds.
Revocation of the TSA certificate is not checked here: the caller that has
CRLs or OCSP at hand does that with the returned certification path.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from timestamp.algorithms import HashAlgorithm, hash_algorithm, verify_cms_signature
from timestamp.asn1 import TimeStampResp
from timestamp.errors import (
    ImprintMismatch,
    InvalidSignature,
    MalformedTimestamp,
    NonceMismatch,
    NotATSACertificate,
    PolicyMismatch,
    SigningCertificateMismatch,
    TimestampError,
    TimestampNotGranted,
    TimestampRequestInvalid,
    UntrustedTimestamp,
)

_MAX_PATH_LENGTH = 8


@dataclass(frozen=True)
class VerifiedTimestamp:
    """What a verified token says.

    ``hash_algorithm`` is the asn1crypto name of the imprint hash,
    ``accuracy`` is ``None`` when the token declares none, and
    ``certification_path`` runs from the TSA certificate to the trusted root.
    """

    gen_time: datetime
    serial_number: int
    policy: str
    hash_algorithm: str
    message_imprint: bytes
    nonce: int | None
    accuracy: timedelta | None
    ordering: bool
    tsa_certificate: x509.Certificate
    certification_path: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class _Token:
    signed_data: cms.SignedData
    tst_info: tsp.TSTInfo
    tst_info_der: bytes


def verify_token(
    token: bytes,
    *,
    roots: Sequence[x509.Certificate],
    data: bytes | None = None,
    digest: bytes | None = None,
    intermediates: Sequence[x509.Certificate] = (),
    tsa_certificate: x509.Certificate | None = None,
    nonce: int | None = None,
    policy: str | None = None,
    validation_time: datetime | None = None,
) -> VerifiedTimestamp:
    """Verify a DER timestamp token (``ContentInfo``) or a DER ``TimeStampResp``.

    Checks, in this order: the structure (exactly one signer, TSTInfo
    content), the message-digest and content-type signed attributes, the
    signature with the signer certificate's key, the ESSCertIDv2 (or ESSCertID)
    reference to that certificate, its extended key usage (exactly
    timeStamping, critical), a certification path to one of ``roots`` valid at
    ``validation_time`` (default: the token's genTime), and then what the
    caller expects: the imprint over ``data`` or ``digest`` (at most one;
    with neither, the imprint is not checked), ``nonce`` and ``policy``.

    The signer certificate is looked up in the token, ``tsa_certificate`` and
    ``intermediates``; when ``tsa_certificate`` is given the token must be
    signed by exactly that certificate.

    Raises :class:`MalformedTimestamp`, :class:`TimestampNotGranted` (a
    rejection response), :class:`InvalidSignature`,
    :class:`SigningCertificateMismatch`, :class:`NotATSACertificate`,
    :class:`UntrustedTimestamp`, :class:`ImprintMismatch`,
    :class:`NonceMismatch`, :class:`PolicyMismatch`,
    :class:`~timestamp.errors.UnsupportedAlgorithm` (SHA-1/MD5 or unknown
    algorithms) and :class:`TimestampRequestInvalid` for contradictory
    arguments.
    """
    if data is not None and digest is not None:
        raise TimestampRequestInvalid("give the data or its digest, not both", detail_zh="数据和摘要只能提供一个")
    if not roots:
        raise UntrustedTimestamp("no trusted root certificates were given", detail_zh="未提供受信任的根证书")

    parsed = _load(token)
    signed_data, tst_info = parsed.signed_data, parsed.tst_info
    try:
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise MalformedTimestamp(f"a timestamp token has exactly one signer, not {len(signer_infos)}")
        signer_info = signer_infos[0]
        embedded = [c.chosen.dump() for c in (signed_data["certificates"] or []) if c.name == "certificate"]
        signed_attributes = signer_info["signed_attrs"]
        if not signed_attributes:
            raise MalformedTimestamp("the token has no signed attributes")
        attributes = {a["type"].dotted: a for a in signed_attributes}
        sid = signer_info["sid"]
        digest_algorithm = hash_algorithm(signer_info["digest_algorithm"]["algorithm"].dotted)
        signature = signer_info["signature"].native
        signature_algorithm = signer_info["signature_algorithm"]
        signed_attributes_der = cms.CMSAttributes(contents=signed_attributes.contents).dump()
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise MalformedTimestamp("the token's SignedData is malformed", detail_zh="时间戳令牌的签名数据格式错误") from e

    try:
        embedded_certificates = [x509.load_der_x509_certificate(c) for c in embedded]
    except ValueError as e:
        raise MalformedTimestamp("a certificate in the token is malformed") from e
    pinned = [tsa_certificate] if tsa_certificate is not None else []
    pool = _unique(pinned + embedded_certificates + list(intermediates))
    signer = _find_signer(sid, pool)
    if tsa_certificate is not None and signer != tsa_certificate:
        raise UntrustedTimestamp(
            "the token is not signed by the expected TSA certificate",
            detail_zh="时间戳令牌不是由指定的时间戳服务证书签发的",
        )

    _check_signed_attributes(attributes, digest_algorithm, parsed.tst_info_der)
    verify_cms_signature(signer.public_key(), signature_algorithm, digest_algorithm, signature, signed_attributes_der)
    _check_signing_certificate(attributes, signer)
    _check_tsa_usage(signer)

    try:
        gen_time: datetime = tst_info["gen_time"].native
        serial_number: int = tst_info["serial_number"].native
        token_policy: str = tst_info["policy"].dotted
        imprint_algorithm = tst_info["message_imprint"]["hash_algorithm"]["algorithm"].dotted
        imprint: bytes = tst_info["message_imprint"]["hashed_message"].native
        token_nonce: int | None = tst_info["nonce"].native
        accuracy = _accuracy(tst_info["accuracy"])
        ordering = bool(tst_info["ordering"].native)
    except (ValueError, TypeError, KeyError) as e:
        raise MalformedTimestamp("the token's TSTInfo is malformed", detail_zh="时间戳信息格式错误") from e

    path = _certification_path(signer, pool, roots, validation_time or gen_time)

    imprint_hash = hash_algorithm(imprint_algorithm)
    _check_imprint(imprint_hash, imprint, data, digest)
    if nonce is not None and token_nonce != nonce:
        raise NonceMismatch(f"the token's nonce {token_nonce} is not {nonce}")
    if policy is not None and token_policy != policy:
        raise PolicyMismatch(
            f"the token's policy {token_policy} is not {policy}", detail_zh=f"时间戳策略 {token_policy} 不是 {policy}"
        )

    return VerifiedTimestamp(
        gen_time=gen_time,
        serial_number=serial_number,
        policy=token_policy,
        hash_algorithm=imprint_hash.name,
        message_imprint=imprint,
        nonce=token_nonce,
        accuracy=accuracy,
        ordering=ordering,
        tsa_certificate=signer,
        certification_path=path,
    )


def _load(der: bytes) -> _Token:
    """Parse a ``ContentInfo`` token or a ``TimeStampResp`` down to its TSTInfo.

    Raises :class:`MalformedTimestamp` or :class:`TimestampNotGranted`.
    """
    try:
        content_info = _content_info(der)
        signed_data = content_info["content"]
        encapsulated = signed_data["encap_content_info"]
        if encapsulated["content_type"].dotted != "1.2.840.113549.1.9.16.1.4":
            raise MalformedTimestamp("the signed content is not a TSTInfo")
        content = encapsulated["content"]
        if not isinstance(content, core.ParsableOctetString):
            raise MalformedTimestamp("the token has no TSTInfo")
        tst_info_der = bytes(content)
        tst_info = tsp.TSTInfo.load(tst_info_der, strict=True)
        tst_info.native  # noqa: B018 (parse every field now, so a malformed TSTInfo fails here)
        return _Token(signed_data, tst_info, tst_info_der)
    except TimestampError:
        raise
    except Exception as e:
        raise MalformedTimestamp("not a timestamp token or response", detail_zh="不是时间戳令牌或响应") from e


def _content_info(der: bytes) -> cms.ContentInfo:
    try:
        content_info = cms.ContentInfo.load(der, strict=True)
        if content_info["content_type"].native == "signed_data":
            return content_info
    except ValueError:
        pass
    response = TimeStampResp.load(der, strict=True)
    status = response["status"]
    if status["status"].native not in ("granted", "granted_with_mods"):
        failure = sorted(status["fail_info"].native or []) if status["fail_info"] else []
        raise TimestampNotGranted(
            f"the TSA answered {status['status'].native}" + (f" ({', '.join(failure)})" if failure else ""),
            detail_zh="时间戳服务拒绝了请求",
            status=status["status"].native,
            failure_info=failure,
        )
    token = response["time_stamp_token"]
    if not isinstance(token, cms.ContentInfo) or token["content_type"].native != "signed_data":
        raise MalformedTimestamp("the granted response carries no token")
    return token


def _unique(certificates: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    unique = []
    for c in certificates:
        der = c.public_bytes(Encoding.DER)
        if der not in seen:
            seen.add(der)
            unique.append(c)
    return unique


def _find_signer(sid: cms.SignerIdentifier, pool: Sequence[x509.Certificate]) -> x509.Certificate:
    """Return the certificate ``sid`` names. Raises :class:`UntrustedTimestamp` if none does."""
    for certificate in pool:
        if sid.name == "issuer_and_serial_number":
            issuer_serial = sid.chosen
            candidate = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
            if (
                candidate.issuer == issuer_serial["issuer"]
                and candidate.serial_number == issuer_serial["serial_number"].native
            ):
                return certificate
        else:
            try:
                ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.chosen.native:
                return certificate
    raise UntrustedTimestamp(
        "the TSA certificate is neither in the token nor among the given certificates",
        detail_zh="令牌中和给定的证书中都没有时间戳服务证书",
    )


def _check_signed_attributes(
    attributes: dict[str, cms.CMSAttribute], digest: HashAlgorithm, tst_info_der: bytes
) -> None:
    """Require content-type TSTInfo and a message-digest over the TSTInfo.

    Raises :class:`InvalidSignature` when the content was changed.
    """
    content_type = attributes.get("1.2.840.113549.1.9.3")
    if content_type is None or content_type["values"][0].dotted != "1.2.840.113549.1.9.16.1.4":
        raise InvalidSignature(
            "the content-type attribute is missing or not TSTInfo", detail_zh="内容类型属性缺失或不是 TSTInfo"
        )
    message_digest = attributes.get("1.2.840.113549.1.9.4")
    if message_digest is None or not hmac.compare_digest(
        message_digest["values"][0].native, digest.digest(tst_info_der)
    ):
        raise InvalidSignature(
            "the message-digest attribute does not match the TSTInfo", detail_zh="消息摘要属性与时间戳信息不匹配"
        )


def _check_signing_certificate(attributes: dict[str, cms.CMSAttribute], signer: x509.Certificate) -> None:
    """Require the ESSCertIDv2 (RFC 5816) or ESSCertID (RFC 2634) reference to ``signer``.

    Raises :class:`SigningCertificateMismatch`.
    """
    v2 = attributes.get("1.2.840.113549.1.9.16.2.47")
    v1 = attributes.get("1.2.840.113549.1.9.16.2.12")
    attribute = v2 or v1
    if attribute is None:
        raise SigningCertificateMismatch(
            "the token has no signing-certificate attribute", detail_zh="令牌缺少签名证书属性"
        )
    signer_der = signer.public_bytes(Encoding.DER)
    try:
        first = attribute["values"][0]["certs"][0]
        if v2 is not None:
            algorithm = hash_algorithm(first["hash_algorithm"]["algorithm"].dotted)
        else:
            algorithm = HashAlgorithm("sha1", "1.3.14.3.2.26", 20)  # ESSCertID is defined over SHA-1
        expected = algorithm.digest(signer_der)
        matches = hmac.compare_digest(first["cert_hash"].native, expected)
        issuer_serial = first["issuer_serial"]
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise SigningCertificateMismatch("the signing-certificate attribute is malformed") from e
    if not matches:
        raise SigningCertificateMismatch(
            "the signing-certificate attribute names another certificate than the signer's",
            detail_zh="签名证书属性指向的不是签名者的证书",
        )
    if issuer_serial:
        certificate = asn1_x509.Certificate.load(signer_der)
        names = [n.chosen for n in issuer_serial["issuer"] if n.name == "directory_name"]
        if issuer_serial["serial_number"].native != certificate.serial_number or certificate.issuer not in names:
            raise SigningCertificateMismatch(
                "the signing-certificate issuer and serial do not match the signer",
                detail_zh="签名证书属性中的颁发者和序列号与签名者不符",
            )


def _check_tsa_usage(certificate: x509.Certificate) -> None:
    """Require extended key usage exactly timeStamping, critical (RFC 3161 2.3).

    Raises :class:`NotATSACertificate`.
    """
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as e:
        raise NotATSACertificate(
            "the TSA certificate has no extended key usage", detail_zh="时间戳服务证书没有扩展密钥用法"
        ) from e
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise NotATSACertificate(
            "the TSA certificate's extended key usage is not exactly timeStamping, critical",
            detail_zh="时间戳服务证书的扩展密钥用法不是仅含 timeStamping 的关键扩展",
        )


def _valid_at(certificate: x509.Certificate, at: datetime) -> bool:
    return certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc


def _can_issue(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign


def _certification_path(
    leaf: x509.Certificate,
    pool: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
) -> tuple[x509.Certificate, ...]:
    """Return a path from ``leaf`` to one of ``roots``, every certificate valid at ``at``.

    Every issuer must be a CA (basicConstraints cA, keyCertSign when key usage
    is present) and must have signed the certificate below it.  Revocation is
    not checked.  Raises :class:`UntrustedTimestamp`.
    """
    if not _valid_at(leaf, at):
        raise UntrustedTimestamp(
            f"the TSA certificate is not valid at {at.isoformat()}", detail_zh="时间戳服务证书在签发时间不在有效期内"
        )
    anchors = {r.public_bytes(Encoding.DER) for r in roots}
    candidates = _unique(list(roots) + list(pool))

    def extend(path: tuple[x509.Certificate, ...]) -> tuple[x509.Certificate, ...] | None:
        current = path[-1]
        if current.public_bytes(Encoding.DER) in anchors:
            return path
        if len(path) > _MAX_PATH_LENGTH:
            return None
        for issuer in candidates:
            if issuer.subject != current.issuer or issuer in path:
                continue
            if not _can_issue(issuer) or not _valid_at(issuer, at):
                continue
            try:
                current.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, CryptographyInvalidSignature):
                continue
            found = extend((*path, issuer))
            if found:
                return found
        return None

    path = extend((leaf,))
    if path is None:
        raise UntrustedTimestamp(
            "no valid certification path from the TSA certificate to a trusted root",
            detail_zh="无法从时间戳服务证书构建到受信任根证书的有效路径",
        )
    return path


def _accuracy(value: tsp.Accuracy | core.Void) -> timedelta | None:
    if not isinstance(value, tsp.Accuracy):
        return None
    return timedelta(
        seconds=value["seconds"].native or 0,
        milliseconds=value["millis"].native or 0,
        microseconds=value["micros"].native or 0,
    )


def _check_imprint(algorithm: HashAlgorithm, imprint: bytes, data: bytes | None, digest: bytes | None) -> None:
    """Compare the token's imprint with ``data`` or ``digest``. Raises :class:`ImprintMismatch`."""
    if data is not None:
        digest = algorithm.digest(data)
    if digest is not None and not hmac.compare_digest(digest, imprint):
        raise ImprintMismatch(
            f"the token's {algorithm.name} imprint does not match the data",
            detail_zh=f"时间戳令牌的 {algorithm.name} 消息印记与数据不匹配",
        )

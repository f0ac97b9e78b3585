"""Fast DER encoding of timestamp tokens.

asn1crypto re-encodes a structure built from Python values every time it is
dumped, and building nested structures copies and retags children: a token
built from dictionaries costs about half a millisecond of pure Python, and
even one assembled from pre-encoded parts with asn1crypto's wrapper classes
spends most of its time constructing those objects.  The :class:`TokenEncoder`
therefore encodes every part that never changes once, in the constructor, with
asn1crypto, and per token writes the few values that change and the
tag-and-length wrappers directly (:mod:`timestamp.der`), field by field in the
order of the ASN.1 definition.  The unit tests compare its output byte for
byte with tokens built the ordinary asn1crypto way.

Field order reference (RFC 3161, RFC 5652, RFC 5816)::

    TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
    ContentInfo   ::= SEQUENCE { contentType, content [0] EXPLICIT SignedData }
    SignedData    ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
                                 certificates [0] IMPLICIT OPTIONAL, signerInfos }
    EncapsulatedContentInfo ::= SEQUENCE { eContentType, eContent [0] EXPLICIT OCTET STRING }
    SignerInfo    ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] IMPLICIT,
                                 signatureAlgorithm, signature }
    TSTInfo       ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime,
                                 accuracy OPTIONAL, ordering DEFAULT FALSE, nonce OPTIONAL,
                                 tsa [0] EXPLICIT OPTIONAL, extensions [1] IMPLICIT OPTIONAL }
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509

from timestamp import der
from timestamp.algorithms import HashAlgorithm, SignatureScheme
from timestamp.policy import Accuracy


def der_set_order(encodings: Sequence[bytes]) -> list[bytes]:
    """Order encodings as DER requires for SET OF (X.690 11.6).

    Complete TLV encodings are never proper prefixes of each other, so plain
    byte order equals X.690's comparison with zero padding.
    """
    return sorted(encodings)


@dataclass(frozen=True)
class EncodedToken:
    """The DER pieces of one granted token.

    ``response`` is the ``TimeStampResp``, ``token`` its ``ContentInfo``,
    ``tst_info`` the signed content and ``signed_attributes`` the DER SET the
    signature covers.
    """

    response: bytes
    token: bytes
    tst_info: bytes
    signed_attributes: bytes
    signature: bytes


class TokenEncoder:
    """Encodes granted responses for one TSA certificate, scheme and configuration.

    ``certificates`` are the DER certificates sent on certReq (the TSA
    certificate and its chain); ``policies`` the accepted policy OIDs;
    ``hash_algorithms`` the accepted imprint hashes.
    """

    def __init__(
        self,
        certificate: bytes,
        certificates: Sequence[bytes],
        scheme: SignatureScheme,
        policies: Sequence[str],
        hash_algorithms: Sequence[HashAlgorithm],
        accuracy: Accuracy,
        *,
        include_tsa_name: bool = False,
        include_signing_time: bool = False,
    ) -> None:
        self._scheme = scheme
        self._include_signing_time = include_signing_time
        tsa_certificate = asn1_x509.Certificate.load(certificate)

        # TSTInfo fragments.
        self._tst_version = tsp.Version("v1").dump()
        self._policies = {oid: core.ObjectIdentifier(oid).dump() for oid in policies}
        # The TSTInfo echoes the request's hash AlgorithmIdentifier with its
        # parameters absent or NULL exactly as sent: some verifiers compare the
        # whole MessageImprint with the request's.
        self._imprint_algorithms = {
            (h.oid, null): algos.DigestAlgorithm(
                {"algorithm": h.name, "parameters": core.Null() if null else None}
            ).dump()
            for h in hash_algorithms
            for null in (False, True)
        }
        self._accuracy = tsp.Accuracy(
            {
                "seconds": accuracy.seconds or None,
                "millis": accuracy.millis or None,
                "micros": accuracy.micros or None,
            }
        ).dump()
        self._tsa_name = (
            asn1_x509.GeneralName(name="directory_name", value=tsa_certificate.subject, explicit=0).dump()
            if include_tsa_name
            else b""
        )

        # Signed attribute fragments (RFC 5652 5.3, RFC 5816).
        self._content_type_attribute = cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump()
        self._message_digest_type = cms.CMSAttributeType("message_digest").dump()
        self._signing_certificate_attribute = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [
                    {
                        "certs": [
                            {
                                "hash_algorithm": {"algorithm": "sha256"},  # the DEFAULT: asn1crypto omits it
                                "cert_hash": hashlib.sha256(certificate).digest(),
                                "issuer_serial": {
                                    "issuer": [asn1_x509.GeneralName({"directory_name": tsa_certificate.issuer})],
                                    "serial_number": tsa_certificate.serial_number,
                                },
                            }
                        ],
                    }
                ],
            }
        ).dump()

        # SignerInfo fragments.
        self._signer_version = cms.CMSVersion("v1").dump()
        self._sid = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": tsa_certificate.issuer,
                    "serial_number": tsa_certificate.serial_number,
                }
            }
        ).dump()
        # RFC 5754: the parameters of SHA-2 AlgorithmIdentifiers are absent.
        digest_algorithm = algos.DigestAlgorithm({"algorithm": scheme.digest.name, "parameters": None})
        self._digest_algorithm = digest_algorithm.dump()
        self._signature_algorithm = algos.SignedDigestAlgorithm(scheme.signature_algorithm).dump()

        # SignedData and ContentInfo fragments.
        self._signed_data_version = cms.CMSVersion("v3").dump()
        self._digest_algorithms = cms.DigestAlgorithms([digest_algorithm]).dump()
        self._tst_info_type = cms.ContentType("tst_info").dump()
        self._signed_data_type = cms.ContentType("signed_data").dump()
        self._certificates = cms.CertificateSet(contents=b"".join(der_set_order(list(certificates))), implicit=0).dump()
        self._granted = tsp.PKIStatusInfo({"status": "granted"}).dump()

    def encode(
        self,
        *,
        hash_algorithm: HashAlgorithm,
        null_parameters: bool,
        imprint: bytes,
        policy: str,
        serial_number: int,
        gen_time: datetime,
        nonce: int | None,
        cert_req: bool,
    ) -> EncodedToken:
        """Encode, sign and wrap one token.

        Raises ``KeyError`` for a policy or hash the encoder was not prepared
        for, ``ValueError`` for a naive ``gen_time``, and whatever the signer
        raises; the caller turns all of them into ``systemFailure``.
        """
        if gen_time.tzinfo is None:
            raise ValueError("genTime must be timezone-aware")
        tst_info = der.tlv(
            der.SEQUENCE,
            b"".join(
                (
                    self._tst_version,
                    self._policies[policy],
                    der.tlv(
                        der.SEQUENCE,
                        self._imprint_algorithms[(hash_algorithm.oid, null_parameters)]
                        + der.tlv(der.OCTET_STRING, imprint),
                    ),
                    der.integer(serial_number),
                    der.generalized_time(gen_time.astimezone(UTC)),
                    self._accuracy,
                    # ordering is FALSE, its DEFAULT, so DER leaves it out.
                    der.integer(nonce) if nonce is not None else b"",
                    self._tsa_name,
                )
            ),
        )

        message_digest = der.tlv(
            der.SEQUENCE,
            self._message_digest_type
            + der.tlv(der.SET, der.tlv(der.OCTET_STRING, self._scheme.digest.digest(tst_info))),
        )
        attributes = [self._content_type_attribute, message_digest, self._signing_certificate_attribute]
        if self._include_signing_time:
            choice = "utc_time" if gen_time.year < 2050 else "generalized_time"  # RFC 5652 11.3
            attributes.append(
                cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({choice: gen_time})]}).dump()
            )
        attribute_contents = b"".join(der_set_order(attributes))
        signed_attributes = der.tlv(der.SET, attribute_contents)
        signature = self._scheme.sign(signed_attributes)

        signer_info = der.tlv(
            der.SEQUENCE,
            b"".join(
                (
                    self._signer_version,
                    self._sid,
                    self._digest_algorithm,
                    der.tlv(0xA0, attribute_contents),  # signedAttrs [0] IMPLICIT SET OF
                    self._signature_algorithm,
                    der.tlv(der.OCTET_STRING, signature),
                )
            ),
        )
        signed_data = der.tlv(
            der.SEQUENCE,
            b"".join(
                (
                    self._signed_data_version,
                    self._digest_algorithms,
                    # EncapsulatedContentInfo: eContentType, eContent [0] EXPLICIT OCTET STRING.
                    der.tlv(der.SEQUENCE, self._tst_info_type + der.tlv(0xA0, der.tlv(der.OCTET_STRING, tst_info))),
                    self._certificates if cert_req else b"",
                    der.tlv(der.SET, signer_info),
                )
            ),
        )
        token = der.tlv(der.SEQUENCE, self._signed_data_type + der.tlv(0xA0, signed_data))  # content [0] EXPLICIT
        response = der.tlv(der.SEQUENCE, self._granted + token)
        return EncodedToken(response, token, tst_info, signed_attributes, signature)

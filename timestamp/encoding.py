"""Fast DER encoding of timestamp tokens with asn1crypto.

asn1crypto re-encodes a structure built from Python values every time it is
dumped, and building nested structures copies and retags children: a token
built from dictionaries costs about half a millisecond of pure Python.  The
:class:`TokenEncoder` therefore encodes every part that never changes once, in
the constructor, and per token encodes only the few values that do change.
Each structure is still produced by its asn1crypto class, which writes the tag
and length (``Class(contents=...)``, ``Class(value, explicit=0)``); this module
only decides which encoded fields go into it, in the order of the ASN.1
definition, exactly as asn1crypto's ``Sequence`` does.  The unit tests compare
its output byte for byte with tokens built the ordinary asn1crypto way.

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
from datetime import datetime

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509

from timestamp.algorithms import HashAlgorithm, SignatureScheme
from timestamp.asn1 import TimeStampResp
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
        for and whatever the signer raises; the caller turns both into
        ``systemFailure``.
        """
        tst_info = tsp.TSTInfo(
            contents=b"".join(
                (
                    self._tst_version,
                    self._policies[policy],
                    tsp.MessageImprint(
                        contents=(
                            self._imprint_algorithms[(hash_algorithm.oid, null_parameters)]
                            + core.OctetString(imprint).dump()
                        )
                    ).dump(),
                    core.Integer(serial_number).dump(),
                    core.GeneralizedTime(gen_time).dump(),
                    self._accuracy,
                    # ordering is FALSE, its DEFAULT, so DER leaves it out.
                    core.Integer(nonce).dump() if nonce is not None else b"",
                    self._tsa_name,
                )
            )
        ).dump()

        attributes = [
            self._content_type_attribute,
            cms.CMSAttribute({"type": "message_digest", "values": [self._scheme.digest.digest(tst_info)]}).dump(),
            self._signing_certificate_attribute,
        ]
        if self._include_signing_time:
            choice = "utc_time" if gen_time.year < 2050 else "generalized_time"  # RFC 5652 11.3
            attributes.append(
                cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({choice: gen_time})]}).dump()
            )
        attribute_contents = b"".join(der_set_order(attributes))
        signed_attributes = cms.CMSAttributes(contents=attribute_contents).dump()
        signature = self._scheme.sign(signed_attributes)

        signer_info = cms.SignerInfo(
            contents=b"".join(
                (
                    self._signer_version,
                    self._sid,
                    self._digest_algorithm,
                    cms.CMSAttributes(contents=attribute_contents, implicit=0).dump(),
                    self._signature_algorithm,
                    core.OctetString(signature).dump(),
                )
            )
        ).dump()
        signed_data = cms.SignedData(
            contents=b"".join(
                (
                    self._signed_data_version,
                    self._digest_algorithms,
                    cms.EncapsulatedContentInfo(
                        contents=(self._tst_info_type + core.OctetString(tst_info, explicit=0).dump())
                    ).dump(),
                    self._certificates if cert_req else b"",
                    cms.SignerInfos(contents=signer_info).dump(),
                )
            ),
            explicit=0,
        ).dump()
        token = cms.ContentInfo(contents=self._signed_data_type + signed_data).dump()
        response = TimeStampResp(contents=self._granted + token).dump()
        return EncodedToken(response, token, tst_info, signed_attributes, signature)

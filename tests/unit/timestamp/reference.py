"""Tokens built the ordinary asn1crypto way, from nested dictionaries.

Two uses: the fast encoder's output must equal this byte for byte (with a
deterministic signature), and tests craft wrong tokens (another certificate in
ESSCertIDv2, a SHA-1 imprint, a missing attribute) that our TSA refuses to
produce but the verifier must reject.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from timestamp.asn1 import TimeStampResp


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


@dataclass
class TokenSpec:
    """Everything a reference token is made of; defaults match our TSA."""

    certificate: x509.Certificate
    sign: Callable[[bytes], bytes]
    signature_algorithm: str
    digest_algorithm: str
    policy: str
    imprint_algorithm: str
    imprint: bytes
    serial_number: int
    gen_time: datetime
    nonce: int | None = None
    accuracy: dict[str, int] = field(default_factory=lambda: {"seconds": 1})
    imprint_null_parameters: bool = True
    chain: Sequence[x509.Certificate] = ()
    cert_req: bool = True
    signing_time: bool = False
    tsa_name: bool = False
    ess_certificate: x509.Certificate | None = None  # certificate named by ESSCertIDv2
    ess_version: int = 2  # 2: signing-certificate-v2, 1: signing-certificate (SHA-1), 0: none
    content_type_attribute: str = "tst_info"
    message_digest: bytes | None = None  # override the message-digest attribute


def reference_response(spec: TokenSpec) -> bytes:
    """Return a DER ``TimeStampResp`` built from asn1crypto dictionaries."""
    tsa = _asn1(spec.certificate)
    tst_info = tsp.TSTInfo(
        {
            "version": "v1",
            "policy": spec.policy,
            "message_imprint": {
                "hash_algorithm": {
                    "algorithm": spec.imprint_algorithm,
                    "parameters": core.Null() if spec.imprint_null_parameters else None,
                },
                "hashed_message": spec.imprint,
            },
            "serial_number": spec.serial_number,
            "gen_time": spec.gen_time,
            "accuracy": spec.accuracy,
            "nonce": spec.nonce,
            "tsa": asn1_x509.GeneralName({"directory_name": tsa.subject}) if spec.tsa_name else None,
        }
    )
    tst_info_der = tst_info.dump()
    digest = hashlib.new(spec.digest_algorithm, tst_info_der).digest()

    ess_certificate = _asn1(spec.ess_certificate or spec.certificate)
    attributes: list[Any] = [
        {"type": "content_type", "values": [spec.content_type_attribute]},
        {"type": "message_digest", "values": [spec.message_digest or digest]},
    ]
    if spec.ess_version == 2:
        attributes.append(
            {
                "type": "signing_certificate_v2",
                "values": [
                    {
                        "certs": [
                            {
                                "hash_algorithm": {"algorithm": "sha256"},
                                "cert_hash": hashlib.sha256(ess_certificate.dump()).digest(),
                                "issuer_serial": {
                                    "issuer": [asn1_x509.GeneralName({"directory_name": ess_certificate.issuer})],
                                    "serial_number": ess_certificate.serial_number,
                                },
                            }
                        ]
                    }
                ],
            }
        )
    elif spec.ess_version == 1:
        attributes.append(
            {
                "type": "signing_certificate",
                "values": [{"certs": [{"cert_hash": hashlib.sha1(ess_certificate.dump()).digest()}]}],
            }
        )
    if spec.signing_time:
        choice = "utc_time" if spec.gen_time.year < 2050 else "generalized_time"
        attributes.append({"type": "signing_time", "values": [cms.Time({choice: spec.gen_time})]})
    signed_attributes = cms.CMSAttributes(attributes)
    signature = spec.sign(signed_attributes.dump())

    certificates = [tsa] + [_asn1(c) for c in spec.chain]
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": spec.digest_algorithm, "parameters": None})],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "certificates": [cms.CertificateChoices({"certificate": c}) for c in certificates]
            if spec.cert_req
            else None,
            "signer_infos": [
                {
                    "version": "v1",
                    "sid": {"issuer_and_serial_number": {"issuer": tsa.issuer, "serial_number": tsa.serial_number}},
                    "digest_algorithm": {"algorithm": spec.digest_algorithm, "parameters": None},
                    "signed_attrs": signed_attributes,
                    "signature_algorithm": {"algorithm": spec.signature_algorithm},
                    "signature": signature,
                }
            ],
        }
    )
    return TimeStampResp(
        {
            "status": {"status": "granted"},
            "time_stamp_token": {"content_type": "signed_data", "content": signed_data},
        }
    ).dump()


def token_of(response: bytes) -> bytes:
    """Return the ``ContentInfo`` token inside a DER ``TimeStampResp``."""
    return TimeStampResp.load(response)["time_stamp_token"].dump()

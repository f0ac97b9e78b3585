"""Signed attributes prepared once per certificate, and the signature space sized once per signer."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from asn1crypto import cms
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_cms import Signer

from signing import sign_cms_detached, sign_pdf
from signing.attributes import signing_certificate_v2, with_prepared_attributes
from signing.interfaces import ProviderTimeStamper
from tests.fixtures.signing import SigningPKI


def _signed_attributes(signer_info: Any) -> dict[str, Any]:
    return {attribute["type"].native: attribute["values"][0] for attribute in signer_info["signed_attrs"]}


def test_a_pades_signature_names_its_certificate_and_carries_no_signing_time(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper
) -> None:
    signed = sign_pdf(sample_pdf, signing_pki.seal, level="B-T", timestamper=timestamper)
    embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    attributes = _signed_attributes(embedded.signer_info)
    assert set(attributes) == {"content_type", "message_digest", "signing_certificate_v2"}
    (named,) = attributes["signing_certificate_v2"]["certs"]
    certificate = signing_pki.seal.signing_cert
    assert named["cert_hash"].native == hashlib.sha256(certificate.dump()).digest()
    assert named["issuer_serial"]["serial_number"].native == certificate.serial_number


def test_a_cades_signature_carries_the_signing_time(signing_pki: SigningPKI) -> None:
    p7s = sign_cms_detached(b"notice", signing_pki.seal, level="B-B")
    signer_info = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]
    assert set(_signed_attributes(signer_info)) == {
        "content_type", "message_digest", "signing_time", "signing_certificate_v2"
    }


def test_the_attribute_value_is_a_fresh_object_from_the_same_encoding(signing_pki: SigningPKI) -> None:
    certificate = signing_pki.seal.signing_cert
    first, second = signing_certificate_v2(certificate), signing_certificate_v2(certificate)
    assert first is not second
    assert first.dump() == second.dump()


def test_the_shared_signer_is_left_unchanged(signing_pki: SigningPKI) -> None:
    signer = signing_pki.seal
    prepared = with_prepared_attributes(signer, signing_time=None)
    assert prepared is not signer and signer.signed_attr_prov_spec is None
    assert prepared.signing_cert is signer.signing_cert


def test_the_signature_space_is_sized_once_per_signer_and_timestamper(
    signing_pki: SigningPKI, sample_pdf: bytes, timestamper: ProviderTimeStamper, monkeypatch: Any
) -> None:
    signer, _issued = signing_pki.signer("organisation-seal")
    dry_runs = []
    original = Signer.async_sign

    async def counting(self: Signer, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("dry_run"):
            dry_runs.append(self)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Signer, "async_sign", counting)
    for _ in range(3):
        sign_pdf(sample_pdf, signer, level="B-T", timestamper=timestamper)
    assert len(dry_runs) == 1
    sign_pdf(sample_pdf, signer, level="B-B")
    assert len(dry_runs) == 2  # without a timestamp token the CMS object is smaller

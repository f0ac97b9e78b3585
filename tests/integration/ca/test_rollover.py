"""CA key rollover: a new key and certificate for the issuing CA; the old key keeps its CRL and OCSP duties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import select

from ca.models import CertificateAuthorityRow
from ca.offline import RolloverRefused
from tests.integration.ca.conftest import CAPlatform
from tests.integration.keys.pki_checks import assert_openssl_verifies, issue_server_certificate, ocsp_status


def _ski(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_issuing_rollover_keeps_old_certificates_valid_revocable_and_answered(
    sqlite_ca_platform: CAPlatform, tmp_path: Path
) -> None:
    service = sqlite_ca_platform.ca
    root = service.get_ca("root").certificate
    old = service.get_ca("issuing")
    before = issue_server_certificate(service, "before.example.gov.cn")

    new = service.rollover("issuing", actor="test")

    assert new.name == "issuing-2" and new.parent == "root"
    assert new.certificate.subject == old.certificate.subject
    assert _ski(new.certificate) != _ski(old.certificate) and new.key_id != old.key_id
    new.certificate.verify_directly_issued_by(root)
    # Issuance moves to the new key: asking for "issuing" now gets "issuing-2".
    after = issue_server_certificate(service, "after.example.gov.cn")
    after.verify_directly_issued_by(new.certificate)
    assert issue_server_certificate(service, "named.example.gov.cn", ca="issuing").issuer == new.certificate.subject

    # Both generations validate against their own chain, and only against it.
    assert_openssl_verifies(tmp_path, before, root, [old.certificate])
    assert_openssl_verifies(tmp_path, after, root, [new.certificate])
    assert_openssl_verifies(tmp_path, before, root, [new.certificate], expect_ok=False)

    # The old certificate can still be revoked; OCSP answers for both keys.
    assert ocsp_status(service, before, old.certificate) == "good"
    assert ocsp_status(service, after, new.certificate) == "good"
    service.revoke(format(before.serial_number, "x"), reason="keyCompromise", actor="test")
    assert ocsp_status(service, before, old.certificate) == "revoked"
    assert ocsp_status(service, after, new.certificate) == "good"

    # Each key signs its own CRL; openssl checks both, with the old key's CRL listing the revocation.
    old_crl = service.publish_crl("issuing").pem
    new_crl = service.publish_crl("issuing-2").pem
    root_crl = service.publish_crl("root").pem
    old_key: Any = old.certificate.public_key()
    new_key: Any = new.certificate.public_key()
    assert x509.load_pem_x509_crl(old_crl).is_signature_valid(old_key)
    assert x509.load_pem_x509_crl(new_crl).is_signature_valid(new_key)
    output = assert_openssl_verifies(tmp_path, before, root, [old.certificate], crls=[old_crl, root_crl],
                                     expect_ok=False)
    assert "certificate revoked" in output
    assert_openssl_verifies(tmp_path, after, root, [new.certificate], crls=[new_crl, root_crl])

    # The old CA stays active for CRL and OCSP, marked as superseded.
    with sqlite_ca_platform.platform.transaction() as session:
        row = session.scalars(select(CertificateAuthorityRow).where(CertificateAuthorityRow.name == "issuing")).one()
        assert row.status == "active" and row.superseded_by == new.id
    service.check_ready()

    # A second rollover follows the chain of successors.
    third = service.rollover("issuing", actor="test")
    assert third.name == "issuing-3"
    issue_server_certificate(service, "third.example.gov.cn").verify_directly_issued_by(third.certificate)


def test_root_rollover_makes_link_certificates_both_ways(sqlite_ca_platform: CAPlatform, tmp_path: Path) -> None:
    service = sqlite_ca_platform.ca
    old_root = service.get_ca("root").certificate
    leaf = issue_server_certificate(service, "leaf.example.gov.cn")
    issuing = service.get_ca("issuing").certificate

    new_root = service.rollover("root", actor="test")

    new_root.certificate.verify_directly_issued_by(new_root.certificate)
    links = service.link_certificates("root") + service.link_certificates("root-2")
    old_with_new = next(c for c in links if c.public_key() == new_root.certificate.public_key())
    new_with_old = next(c for c in links if c.public_key() == old_root.public_key())
    old_with_new.verify_directly_issued_by(old_root)
    new_with_old.verify_directly_issued_by(new_root.certificate)
    # A relying party that trusts only the new root still validates the old hierarchy through new-with-old.
    assert_openssl_verifies(tmp_path, leaf, new_root.certificate, [issuing, new_with_old])
    assert_openssl_verifies(tmp_path, leaf, old_root, [issuing])


def test_rollover_of_a_revoked_ca_is_refused(sqlite_ca_platform: CAPlatform) -> None:
    service = sqlite_ca_platform.ca
    department = service.create_ca("dept-a", parent="root", actor="test")
    service.revoke(format(department.serial, "x"), reason="cessationOfOperation", actor="test")
    with pytest.raises(RolloverRefused) as raised:
        service.rollover("dept-a", actor="test")
    assert raised.value.code == "ca.rollover_refused"

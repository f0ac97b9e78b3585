"""Certificates our CA keys signed elsewhere (a DR sandbox) are recorded as issued and revoked."""

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.platform import initialise, open_platform
from ca.external import ExternalCertificateInvalid, record_revoked_external
from tests.helpers import make_settings


def _signed_by(issuer: x509.Certificate, key, serial: int) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DR probe drill-1")])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject)
            .public_key(ec.generate_private_key(ec.SECP256R1()).public_key()).serial_number(serial)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(minutes=15))
            .sign(key, hashes.SHA256()))


def test_external_probe_certificate_is_recorded_revoked_and_reported_revoked(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var")
    initialise(settings)
    platform = open_platform(settings)
    try:
        ca = platform.services["ca"]
        issuing = ca.get_ca("issuing")
        issuer_cert = x509.load_der_x509_certificate(issuing.certificate_der)
        key = platform.keystore.private_key(issuing.key_id)
        certificate = _signed_by(issuer_cert, key, 0x5EED_0001_0002_0003)
        with platform.transaction() as session:
            recorded = record_revoked_external(session, platform.require_audit(), platform.clock, certificate,
                                               "issuing", profile="dr-probe", owner="dr:drill-1", actor="dr")
        info = ca.get_certificate(recorded.certificate_id)
        assert (info.status, info.profile) == ("revoked", "dr-probe")
        published = ca.publish_crl("issuing")
        crl = x509.load_der_x509_crl(published.der)
        assert crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None
        # The same serial twice, or a certificate another key signed, is refused and writes nothing.
        with pytest.raises(ExternalCertificateInvalid), platform.transaction() as session:
            record_revoked_external(session, platform.require_audit(), platform.clock, certificate, "issuing",
                                    profile="dr-probe", owner="dr:drill-1", actor="dr")
        stranger = _signed_by(issuer_cert, ec.generate_private_key(ec.SECP256R1()), 99)
        with pytest.raises(ExternalCertificateInvalid), platform.transaction() as session:
            record_revoked_external(session, platform.require_audit(), platform.clock, stranger, "issuing",
                                    profile="dr-probe", owner="dr:drill-1", actor="dr")
        with platform.transaction() as session:
            platform.require_audit().verify(session)
    finally:
        platform.close()

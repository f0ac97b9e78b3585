"""TLS: the shipped 60-tls.ldif with a server certificate from our CA, StartTLS and LDAPS through the adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from directory.errors import LDAPConfigurationError, LDAPUnavailable
from directory.ldap import LDAPDirectory
from directory.slapd import TLS_FILE, render_config
from tests.fixtures.slapd import BASE_DN, HengxinSlapd, SlapdFactory
from tests.integration.directory.tools import MiniPKI, pem_key


@pytest.fixture
def tls_slapd(slapd_factory: SlapdFactory, test_pki: MiniPKI, tmp_path: Path) -> HengxinSlapd:
    server = slapd_factory(ldaps=True)
    certificate, key = test_pki.issue("ldap.gov.example", server_ip="127.0.0.1")
    files = {
        "TLS_CA_FILE": tmp_path / "ca.pem",
        "TLS_CERT_FILE": tmp_path / "ldap.pem",
        "TLS_KEY_FILE": tmp_path / "ldap.key",
    }
    files["TLS_CA_FILE"].write_bytes(test_pki.certificate.public_bytes(serialization.Encoding.PEM))
    files["TLS_CERT_FILE"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files["TLS_KEY_FILE"].write_bytes(pem_key(key))
    files["TLS_KEY_FILE"].chmod(0o600)
    server.apply_config_ldif(render_config(TLS_FILE, **{k: str(v) for k, v in files.items()}))
    server.ca_file = files["TLS_CA_FILE"]
    return server


def test_start_tls_with_a_certificate_from_our_ca(tls_slapd: HengxinSlapd) -> None:
    adapter = LDAPDirectory(
        tls_slapd.ldap_uri,
        BASE_DN,
        bind_dn=tls_slapd.root_dn,
        password=tls_slapd.root_pw,
        start_tls=True,
        ca_file=tls_slapd.ca_file,
        network_timeout=2.0,
    )
    adapter.check()
    adapter.close()


def test_ldaps_with_a_certificate_from_our_ca(tls_slapd: HengxinSlapd) -> None:
    assert tls_slapd.ldaps_uri is not None
    adapter = LDAPDirectory(
        tls_slapd.ldaps_uri,
        BASE_DN,
        bind_dn=tls_slapd.root_dn,
        password=tls_slapd.root_pw,
        ca_file=tls_slapd.ca_file,
        network_timeout=2.0,
    )
    adapter.check()
    adapter.close()


def test_a_server_certificate_from_another_ca_is_refused(tls_slapd: HengxinSlapd, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(MiniPKI.create("Other Root").certificate.public_bytes(serialization.Encoding.PEM))
    adapter = LDAPDirectory(
        tls_slapd.ldap_uri,
        BASE_DN,
        bind_dn=tls_slapd.root_dn,
        password=tls_slapd.root_pw,
        start_tls=True,
        ca_file=other,
        network_timeout=2.0,
    )
    with pytest.raises(LDAPUnavailable):
        adapter.check()


def test_start_tls_cannot_be_combined_with_ldaps() -> None:
    with pytest.raises(LDAPConfigurationError):
        LDAPDirectory("ldaps://127.0.0.1/", BASE_DN, start_tls=True)

"""Offline root: export a CSR for the issuing CA's key, sign it with openssl acting as the root kept off the
network, import the certificate and the root's CRL, and issue under the new chain."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca.offline import ImportRefused
from tests.integration.ca.conftest import CAPlatform
from tests.integration.keys.pki_checks import assert_openssl_verifies, issue_server_certificate, ocsp_status, openssl

ROOT_EXTENSIONS = """
[ req ]
distinguished_name = dn
[ dn ]
[ root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ sub ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

CA_CONFIG = """
[ ca ]
default_ca = offline
[ offline ]
database = {d}/index.txt
crlnumber = {d}/crlnumber
certificate = {d}/root.pem
private_key = {d}/root.key
default_md = sha256
default_crl_days = 30
"""


def _run(*arguments: str) -> None:
    result = openssl(*arguments)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def offline_root(tmp_path: Path) -> Path:
    """An openssl root CA in a directory (key, certificate, ``openssl ca`` database): the 'offline' machine."""
    directory = tmp_path / "offline"
    directory.mkdir()
    (directory / "ext.cnf").write_text(ROOT_EXTENSIONS)
    (directory / "ca.cnf").write_text(CA_CONFIG.format(d=directory))
    (directory / "index.txt").write_text("")
    (directory / "crlnumber").write_text("1000\n")
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(directory / "root.key"))
    _run("req", "-new", "-x509", "-key", str(directory / "root.key"), "-subj",
         "/C=CN/O=Hengxin/CN=Hengxin Offline Root", "-days", "3650", "-sha256", "-config", str(directory / "ext.cnf"),
         "-extensions", "root", "-out", str(directory / "root.pem"))
    return directory


def test_issuing_ca_signed_by_an_offline_root_issues_certificates_openssl_accepts(
    sqlite_ca_platform: CAPlatform, offline_root: Path, tmp_path: Path
) -> None:
    service = sqlite_ca_platform.ca
    key_id = service.get_ca("issuing").key_id
    (tmp_path / "issuing.csr").write_bytes(service.export_csr("issuing")[1])
    csr = x509.load_pem_x509_csr((tmp_path / "issuing.csr").read_bytes())
    assert csr.is_signature_valid and csr.public_key() == service.keystore.public_key(key_id)

    # The ceremony: the offline root signs the request.
    _run("x509", "-req", "-in", str(tmp_path / "issuing.csr"), "-CA", str(offline_root / "root.pem"),
         "-CAkey", str(offline_root / "root.key"), "-set_serial", "0x1234abcd", "-days", "1825", "-sha256",
         "-extfile", str(offline_root / "ext.cnf"), "-extensions", "sub", "-out", str(tmp_path / "issuing.pem"))
    root_pem = (offline_root / "root.pem").read_bytes()
    root = x509.load_pem_x509_certificate(root_pem)
    # The fixture's frozen clock started before openssl signed: bring it to the real time.
    clock = sqlite_ca_platform.clock
    clock.advance(seconds=(dt.datetime.now(dt.UTC) - clock()).total_seconds() + 1)

    # Wrong root: refused, nothing changes.
    other = tmp_path / "other"
    other.mkdir()
    _run("req", "-new", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(other / "k.pem"), "-subj", "/CN=Other Root", "-days", "30", "-out", str(other / "r.pem"))
    with pytest.raises(ImportRefused) as refused:
        service.import_certificate("issuing", (tmp_path / "issuing.pem").read_bytes(), (other / "r.pem").read_bytes(),
                                   actor="test")
    assert refused.value.code == "ca.import_refused" and refused.value.extra["rule"] == "chain"
    # A certificate for another key: refused.
    with pytest.raises(ImportRefused) as mismatch:
        service.import_certificate("root", (tmp_path / "issuing.pem").read_bytes(), root_pem, actor="test")
    assert mismatch.value.extra["rule"] == "key_mismatch"

    issuing = service.import_certificate("issuing", (tmp_path / "issuing.pem").read_bytes(), root_pem, actor="test")
    assert issuing.parent == "offline-root" and issuing.certificate.issuer == root.subject
    assert service.get_ca("offline-root").status == "offline"
    assert [c.name for c in service.chain("issuing")] == ["issuing", "offline-root"]

    leaf = issue_server_certificate(service, "portal.example.gov.cn")
    assert_openssl_verifies(tmp_path, leaf, root, [issuing.certificate])
    assert ocsp_status(service, leaf, issuing.certificate) == "good"
    service.check_ready()  # the offline root has no key here and is not probed

    # The offline root's CRL, made by `openssl ca -gencrl`, is imported and served.
    _run("ca", "-gencrl", "-config", str(offline_root / "ca.cnf"), "-out", str(tmp_path / "root.crl"))
    published = service.import_crl((tmp_path / "root.crl").read_bytes(), actor="test")
    assert published.crl_number == 0x1000
    root_crl = x509.load_pem_x509_crl((tmp_path / "root.crl").read_bytes())
    assert service.latest_crl("offline-root").der == root_crl.public_bytes(serialization.Encoding.DER)
    issuing_crl = service.publish_crl("issuing").pem
    time.sleep(1.5)  # the frozen clock is a second ahead of openssl's
    assert_openssl_verifies(tmp_path, leaf, root, [issuing.certificate],
                            crls=[(tmp_path / "root.crl").read_bytes(), issuing_crl])
    with pytest.raises(ImportRefused) as stale:
        service.import_crl((tmp_path / "root.crl").read_bytes(), actor="test")
    assert stale.value.extra["rule"] == "crl_not_newer"


def test_offline_root_sequence_and_rollover_through_the_command_line(offline_root: Path, tmp_path: Path) -> None:
    """The documented sequence: init, export-csr, sign offline, import-cert, import-crl; then a rollover."""
    from typer.testing import CliRunner

    from api.cli import app
    from tests.integration.ca.conftest import make_csr

    runner = CliRunner()
    config = tmp_path / "instance" / "hengxin.toml"

    def hengxin(*arguments: str) -> str:
        result = runner.invoke(app, ["--config", str(config), *arguments])
        assert result.exit_code == 0, f"{arguments}: {result.output}{result.exception!r}"
        return result.output

    hengxin("init")
    hengxin("ca", "export-csr", "--ca", "issuing", "-o", str(tmp_path / "issuing.csr"))
    _run("x509", "-req", "-in", str(tmp_path / "issuing.csr"), "-CA", str(offline_root / "root.pem"),
         "-CAkey", str(offline_root / "root.key"), "-set_serial", "0x77", "-days", "1825", "-sha256",
         "-extfile", str(offline_root / "ext.cnf"), "-extensions", "sub", "-out", str(tmp_path / "issuing.pem"))
    output = hengxin("ca", "import-cert", "--ca", "issuing", str(tmp_path / "issuing.pem"),
                     "--root", str(offline_root / "root.pem"))
    assert "parent:        offline-root" in output
    _run("ca", "-gencrl", "-config", str(offline_root / "ca.cnf"), "-out", str(tmp_path / "root.crl"))
    assert "imported CRL number 4096" in hengxin("ca", "import-crl", str(tmp_path / "root.crl"))

    csr, _ = make_csr("portal.example.gov.cn", dns=("portal.example.gov.cn",))
    (tmp_path / "portal.csr").write_bytes(csr)
    hengxin("ca", "issue", "--profile", "server-tls", "--csr", str(tmp_path / "portal.csr"),
            "-o", str(tmp_path / "portal.pem"), "--chain", str(tmp_path / "chain.pem"))
    result = openssl("verify", "-x509_strict", "-CAfile", str(offline_root / "root.pem"),
                     "-untrusted", str(tmp_path / "issuing.pem"), str(tmp_path / "portal.pem"))
    assert result.returncode == 0, result.stdout + result.stderr

    # A rollover of the issuing CA under an offline root: the new key's certificate must come from the
    # root too, so `ca rollover` refuses and the successor's CSR goes through the same ceremony.
    refused = runner.invoke(app, ["--config", str(config), "ca", "rollover", "--ca", "issuing"])
    assert refused.exit_code != 0 and "export-csr" in str(refused.exception)
    hengxin("ca", "export-csr", "--ca", "issuing", "--new-key", "-o", str(tmp_path / "issuing-2.csr"))
    _run("x509", "-req", "-in", str(tmp_path / "issuing-2.csr"), "-CA", str(offline_root / "root.pem"),
         "-CAkey", str(offline_root / "root.key"), "-set_serial", "0x78", "-days", "1825", "-sha256",
         "-extfile", str(offline_root / "ext.cnf"), "-extensions", "sub", "-out", str(tmp_path / "issuing-2.pem"))
    output = hengxin("ca", "import-cert", "--ca", "issuing-2", str(tmp_path / "issuing-2.pem"),
                     "--root", str(offline_root / "root.pem"))
    assert "status:        active" in output
    hengxin("ca", "issue", "--profile", "server-tls", "--csr", str(tmp_path / "portal.csr"),
            "-o", str(tmp_path / "portal-2.pem"), "--chain", str(tmp_path / "chain-2.pem"))
    new_leaf = x509.load_pem_x509_certificate((tmp_path / "portal-2.pem").read_bytes())
    new_leaf.verify_directly_issued_by(x509.load_pem_x509_certificate((tmp_path / "issuing-2.pem").read_bytes()))
    for leaf, issuing in (("portal.pem", "issuing.pem"), ("portal-2.pem", "issuing-2.pem")):
        result = openssl("verify", "-x509_strict", "-CAfile", str(offline_root / "root.pem"),
                         "-untrusted", str(tmp_path / issuing), str(tmp_path / leaf))
        assert result.returncode == 0, result.stdout + result.stderr

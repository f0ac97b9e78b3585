"""``hengxin ca ...`` as an operator runs it, from ``hengxin init`` to revocation and CRL publication."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.ca.conftest import make_csr

HENGXIN = str(Path(sys.executable).parent / "hengxin")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14"}
    return subprocess.run([HENGXIN, "--config", "var/hengxin.toml", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca-cli")
    result = run("init", cwd=directory)
    assert result.returncode == 0, result.stderr
    return directory


def test_init_prints_the_fingerprints_of_the_new_hierarchy(instance: Path) -> None:
    listed = run("ca", "list", cwd=instance)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines() if "\t" in line]  # log lines go to stdout too
    assert [(r[0], r[1], r[2]) for r in rows] == [("root", "-", "active"), ("issuing", "root", "active")]
    again = run("init", cwd=instance)
    for name, *_rest, fingerprint in rows:
        assert f"CA '{name}' fingerprint (SHA-256): {fingerprint}" in again.stdout


def test_create_issue_show_revoke_publish_and_export(instance: Path) -> None:
    created = run("ca", "create", "--parent", "root", "--name", "dept-finance",
                  "--permitted-dns", "finance.example.gov.cn", cwd=instance)
    assert created.returncode == 0, created.stderr
    assert "parent:        root" in created.stdout and "path length:   0" in created.stdout

    csr, _ = make_csr("pay.finance.example.gov.cn", dns=("pay.finance.example.gov.cn",))
    (instance / "pay.csr").write_bytes(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
    issued = run("ca", "issue", "--profile", "server-tls", "--csr", "pay.csr", "--ca", "dept-finance",
                 "-o", "pay.pem", "--chain", "chain.pem", cwd=instance)
    assert issued.returncode == 0, issued.stderr
    certificate = x509.load_pem_x509_certificate((instance / "pay.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((instance / "chain.pem").read_bytes())
    certificate.verify_directly_issued_by(chain[0])
    serial = format(certificate.serial_number, "x")

    shown = run("ca", "show", serial, cwd=instance)
    assert "status:        issued" in shown.stdout and "CA:            dept-finance" in shown.stdout
    revoked = run("ca", "revoke", serial, "--reason", "keyCompromise", cwd=instance)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    twice = run("ca", "revoke", serial, "--reason", "keyCompromise", cwd=instance)
    assert twice.returncode == 1
    assert twice.stderr.strip().splitlines()[-1] == (
        "hengxin: error: the certificate is already revoked [ca.already_revoked]"
    )

    published = run("ca", "crl", "--ca", "dept-finance", "-o", "finance.crl", cwd=instance)
    assert published.returncode == 0, published.stderr
    crl = x509.load_der_x509_crl((instance / "finance.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None

    exported = run("ca", "export-chain", "--ca", "dept-finance", cwd=instance)
    subjects = [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(exported.stdout.encode())]
    assert subjects == ["CN=Hengxin dept-finance CA,O=Hengxin,C=CN", "CN=Hengxin Root CA,O=Hengxin,C=CN"]


def test_errors_are_one_line_with_their_code(instance: Path) -> None:
    unknown = run("ca", "crl", "--ca", "nope", cwd=instance)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines()[-1] == (
        "hengxin: error: no certificate authority is named 'nope' [ca.unknown_ca]"
    )
    (instance / "garbage.csr").write_bytes(b"\x30\x03abc")
    garbage = run("ca", "issue", "--profile", "server-tls", "--csr", "garbage.csr", cwd=instance)
    assert garbage.returncode == 1 and "[ca.csr_invalid]" in garbage.stderr and "Traceback" not in garbage.stderr

"""``hengxin sign ...`` and ``hengxin verify`` as an operator runs them: a seal created, configured and used,
outputs checked by pdfsig and openssl, personal signatures refused, records audited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import create_engine, text

from tests.fixtures.nss import make_nss_db, require_binary
from tests.fixtures.signing import minimal_pdf

HENGXIN = str(Path(sys.executable).parent / "hengxin")


def hengxin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14"}
    return subprocess.run([HENGXIN, "--config", "var/hengxin.toml", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("signing-cli")
    assert hengxin("init", cwd=directory).returncode == 0
    created = hengxin("sign", "seal-create", "office", "--subject-o", "某某县人民政府", "--allow-role", "application",
                      cwd=directory)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("[[signing.seals]]\nname = \"office\"\ncertificate = ")
    with (directory / "var" / "hengxin.toml").open("a", encoding="utf-8") as config:
        config.write("\n" + created.stdout)
    (directory / "a.pdf").write_bytes(minimal_pdf())
    (directory / "notice.txt").write_text("关于印发年度工作计划的通知\n", encoding="utf-8")
    return directory


def _signature_rows(directory: Path) -> list[tuple[str, str, str]]:
    engine = create_engine(f"sqlite:///{directory / 'var' / 'hengxin.db'}")
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(
                text("select kind, seal, requester from signing_signatures order by id"))]
    finally:
        engine.dispose()


def test_seal_signature_from_the_cli_is_valid_recorded_and_audited(instance: Path) -> None:
    signed = hengxin("sign", "pdf", "a.pdf", "--seal", "office", "--level", "B-LTA", "-o", "a.signed.pdf",
                     cwd=instance)
    assert signed.returncode == 0, signed.stderr
    assert "level:   B-LTA" in signed.stdout
    verified = hengxin("verify", "a.signed.pdf", cwd=instance)
    assert verified.returncode == 0 and verified.stdout.rstrip().endswith("Verification: OK"), verified.stdout

    root = instance / "var" / "root.pem"
    engine = create_engine(f"sqlite:///{instance / 'var' / 'hengxin.db'}")
    with engine.connect() as connection:
        der = connection.execute(text("select certificate_der from ca_authorities where parent_id is null")).scalar()
    engine.dispose()
    root.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    nss_db = make_nss_db(instance / "nss", root.read_bytes())
    pdfsig = subprocess.run([require_binary("pdfsig", "poppler-utils"), "-nssdir", nss_db, "-no-ocsp",
                             str(instance / "a.signed.pdf")], capture_output=True, text=True, timeout=60)
    assert "Signature is Valid." in pdfsig.stdout and "Certificate is Trusted." in pdfsig.stdout, pdfsig.stdout

    cms = hengxin("sign", "cms", "notice.txt", "--seal", "office", "-o", "notice.p7s", cwd=instance)
    assert cms.returncode == 0, cms.stderr
    openssl = subprocess.run(
        [require_binary("openssl", "openssl"), "cms", "-verify", "-binary", "-inform", "DER", "-in", "notice.p7s",
         "-content", "notice.txt", "-CAfile", str(root), "-out", "/dev/null"],
        cwd=instance, capture_output=True, text=True, timeout=60,
    )
    assert openssl.returncode == 0, openssl.stderr
    assert hengxin("verify", "notice.p7s", "--content", "notice.txt", cwd=instance).returncode == 0
    (instance / "other.txt").write_text("changed", encoding="utf-8")
    assert hengxin("verify", "notice.p7s", "--content", "other.txt", cwd=instance).returncode == 1

    rows = _signature_rows(instance)
    assert [(kind, seal) for kind, seal, _ in rows] == [("pdf", "office"), ("cms", "office")]
    assert all(requester.startswith("cli:") for _, _, requester in rows)
    audit = hengxin("audit", "verify", cwd=instance)
    assert audit.returncode == 0, audit.stderr


def test_personal_signatures_and_unknown_seals_are_refused_by_the_cli(instance: Path) -> None:
    before = _signature_rows(instance)
    personal = hengxin("sign", "pdf", "a.pdf", "--user", "zhangwei", "-o", "x.pdf", cwd=instance)
    assert personal.returncode != 0 and "[signing.personal_signing_refused]" in personal.stderr
    nothing = hengxin("sign", "pdf", "a.pdf", "-o", "x.pdf", cwd=instance)
    assert "[signing.personal_signing_refused]" in nothing.stderr
    unknown = hengxin("sign", "pdf", "a.pdf", "--seal", "nope", "-o", "x.pdf", cwd=instance)
    assert unknown.returncode != 0 and "[signing.seal_not_allowed]" in unknown.stderr
    (instance / "garbage.pdf").write_bytes(b"not a pdf")
    garbage = hengxin("sign", "pdf", "garbage.pdf", "--seal", "office", "-o", "x.pdf", cwd=instance)
    assert "[signing.pdf_invalid]" in garbage.stderr
    assert not (instance / "x.pdf").exists()
    assert _signature_rows(instance) == before

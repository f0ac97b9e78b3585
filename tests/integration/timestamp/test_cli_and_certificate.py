"""`hengxin timestamp ...` as an operator runs it, and the TSA certificate's life cycle."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.components.timestamp import check_certificate, renew_certificate
from api.platform import initialise, open_platform
from ca.service import CertificateQuery
from core.clock import FrozenClock
from tests.helpers import make_settings
from tests.integration.timestamp.tsa_platform import counts
from timestamp.request import build_request
from timestamp.service import TimestampService
from timestamp.verify import verify_token

HENGXIN = str(Path(sys.executable).parent / "hengxin")
DATA = "关于印发某某办法的通知\n".encode()


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HENGXIN_KEYS__SCRYPT_LOG2_N": "14"}
    return subprocess.run(
        [HENGXIN, "--config", "var/hengxin.toml", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tsa-cli")
    result = run("init", cwd=directory)
    assert result.returncode == 0, result.stderr
    assert "TSA certificate fingerprint (SHA-256)" in result.stdout
    return directory


def test_stamp_writes_a_reply_that_verify_and_openssl_accept_and_it_is_recorded(instance: Path) -> None:
    (instance / "notice.txt").write_bytes(DATA)

    stamped = run("timestamp", "stamp", "notice.txt", cwd=instance)
    assert stamped.returncode == 0, stamped.stderr
    assert (instance / "notice.txt.tsr").exists()
    serial = next(line.split()[-1] for line in stamped.stdout.splitlines() if line.startswith("serial:"))

    verified = run("timestamp", "verify", "notice.txt", "notice.txt.tsr", cwd=instance)
    assert verified.returncode == 0, verified.stderr
    assert "Verification: OK" in verified.stdout
    assert "recorded: yes, requested by cli:" in verified.stdout

    shown = run("timestamp", "show", serial, cwd=instance)
    assert shown.returncode == 0 and f"serial:      {serial}" in shown.stdout
    audit = run("audit", "verify", cwd=instance)
    assert audit.returncode == 0, audit.stderr

    openssl = shutil.which("openssl")
    assert openssl is not None, "apt-get install openssl"
    settings = make_settings(instance / "var")
    platform = open_platform(settings)
    try:
        ca = platform.services["ca"]
        (instance / "root.pem").write_bytes(next(c.certificate_pem for c in ca.list_cas() if c.is_root))
        (instance / "chain.pem").write_bytes(b"".join(c.certificate_pem for c in ca.list_cas() if not c.is_root))
    finally:
        platform.close()
    result = subprocess.run(
        [
            openssl,
            "ts",
            "-verify",
            "-in",
            "notice.txt.tsr",
            "-data",
            "notice.txt",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
        ],
        cwd=instance,
        capture_output=True,
        text=True,
    )
    assert "Verification: OK" in result.stdout, result.stderr


def test_verify_of_a_changed_file_fails_with_one_line(instance: Path) -> None:
    (instance / "a.txt").write_bytes(DATA)
    assert run("timestamp", "stamp", "a.txt", "-o", "a.tsr", "--hash", "sha512", cwd=instance).returncode == 0
    (instance / "a.txt").write_bytes(DATA + b"tampered")

    result = run("timestamp", "verify", "a.txt", "a.tsr", cwd=instance)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "hengxin: error: the token's sha512 imprint does not match the data [timestamp.imprint_mismatch]"
    ]


def test_stamp_with_an_unaccepted_policy_fails_and_writes_nothing(instance: Path) -> None:
    (instance / "b.txt").write_bytes(DATA)
    result = run("timestamp", "stamp", "b.txt", "--policy", "1.2.3.4", cwd=instance)
    assert result.returncode == 1
    assert "unacceptedPolicy" in result.stderr and "[timestamp.not_granted]" in result.stderr
    assert not (instance / "b.txt.tsr").exists()


def test_status_and_renew(instance: Path) -> None:
    before = run("timestamp", "status", cwd=instance)
    assert before.returncode == 0, before.stderr
    assert "clock:       not checked" in before.stdout
    old = next(line.split()[-1] for line in before.stdout.splitlines() if line.startswith("fingerprint:"))

    renewed = run("timestamp", "renew", cwd=instance)
    assert renewed.returncode == 0, renewed.stderr

    after = run("timestamp", "status", cwd=instance).stdout
    new = next(line.split()[-1] for line in after.splitlines() if line.startswith("fingerprint:"))
    assert new != old
    assert "tokens:      " in after


def test_the_certificate_is_renewed_before_it_expires_and_withdrawn_when_revoked(tmp_path: Path) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    settings = make_settings(tmp_path / "var", tsa={"renew_before_days": 30})
    initialise(settings, clock=clock)
    platform = open_platform(settings, clock=clock)
    try:
        service = platform.services["tsa"]
        assert isinstance(service, TimestampService) and service.credentials is not None
        first = service.credentials.certificate
        check_certificate(platform, service)
        assert service.credentials.certificate == first  # far from expiry: nothing to do

        clock.now = first.not_valid_after_utc - dt.timedelta(days=10)
        check_certificate(platform, service)
        second = service.credentials.certificate
        assert second != first and second.public_key() == first.public_key()
        assert second.not_valid_after_utc > clock.now + dt.timedelta(days=30)
        assert [a.name for a in platform.alerts.history][-1] == "tsa.certificate_renewed"
        answer = service.stamp(build_request(DATA))
        verified = verify_token(
            answer.der, roots=[c.certificate for c in platform.services["ca"].list_cas() if c.is_root], data=DATA
        )
        assert verified.tsa_certificate == second

        rekeyed = renew_certificate(platform, actor="test", rekey=True)
        assert service.credentials.certificate.public_key() != second.public_key()

        platform.services["ca"].revoke(rekeyed.id, actor="test", reason="keyCompromise")
        check_certificate(platform, service)
        assert service.credentials is not None  # the renewed certificate before it is still valid
        for info in platform.services["ca"].search(CertificateQuery(owner="platform:tsa", status="issued")):
            platform.services["ca"].revoke(info.id, actor="test", reason="cessationOfOperation")
        check_certificate(platform, service)
        assert service.credentials is None
        assert [a.name for a in platform.alerts.history][-1] == "tsa.certificate_unavailable"
        before = counts(platform)
        with TestClient(create_app(settings, platform)) as client:
            refused = client.post(
                "/tsa", content=build_request(DATA), headers={"Content-Type": "application/timestamp-query"}
            )
            ready = client.get("/readyz")
        assert (refused.status_code, refused.json()["code"]) == (503, "timestamp.unavailable")
        assert ready.json()["checks"]["tsa"] == "timestamp.unavailable"
        assert counts(platform) == before
    finally:
        platform.close()

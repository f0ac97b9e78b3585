"""Drills end to end: real restic, real SQLite, the real `hengxin serve` sandbox, openssl, pyHanko."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select

from backup.manifest import Manifest
from core.store.models import AuditRecordRow
from dr.drill import DrillResult, DrillService
from dr.sandbox import port_is_free
from tests.integration.backup.conftest import BackupWorld


def service_of(world: BackupWorld) -> DrillService:
    service = world.platform.services["dr"]
    assert isinstance(service, DrillService)
    return service


def assert_nothing_left(result: DrillResult) -> None:
    sandbox = result.report.get("steps") and next(
        (s["detail"].get("removed") for s in result.report["steps"] if s["name"] == "teardown"), None
    )
    for step in result.report["steps"]:
        if step["name"] == "start_sandbox" and step["detail"]:
            assert port_is_free(step["detail"]["port"])
    if sandbox:
        assert not Path(sandbox).exists()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    cwd = os.readlink(entry / "cwd")
                except OSError:
                    continue
                assert sandbox.encode() not in cmdline, f"process {entry.name} still runs: {cmdline!r}"
                assert not cwd.startswith(sandbox), f"process {entry.name} still runs in the sandbox: {cmdline!r}"


def steps(result: DrillResult) -> dict[str, str]:
    return {s["name"]: s["status"] for s in result.report["steps"]}


def test_drill_on_platform_with_issued_revoked_and_signed_material_passes(
    drill_world: Callable[..., BackupWorld], tmp_path: Path
) -> None:
    world = drill_world()
    result = service_of(world).run_drill()
    assert result.result == "passed", result.report
    assert result.exit_code == 0
    status = steps(result)
    for name in (
        "probe:ready", "probe:certificate", "probe:revocation", "probe:timestamp", "probe:signature",
        "probe:login", "teardown",
    ):
        assert status[name] == "passed", (name, result.report["steps"])
    assert result.report["probes"]["revocation"]["ocsp"] == "revoked"
    [check] = [s for s in result.report["steps"] if s["name"] == "check_repository"]
    assert check["status"] == "passed" and check["detail"]["started_with"] == "select_snapshot"
    assert result.report["probes"]["revocation"]["crl"] == "listed"
    signature = result.report["probes"]["signature"]
    assert signature["intact"] and signature["valid"] and signature["trusted"] and signature["qpdf_check"] == "ok"
    assert signature["signed_pdf"] == "discarded"
    login = result.report["probes"]["login"]
    assert login["login"] == f"dr-probe-{result.id}".lower()
    assert login["issuer"].startswith("http://127.0.0.1:") and login["audience"] == f"hengxin-dr-{result.id}"
    print("probes:", json.dumps({k: result.report["probes"][k] for k in ("signature", "login")}, indent=1))
    assert result.rto_seconds is not None and result.rto_seconds < 120
    assert result.rpo_seconds is not None and result.rpo_seconds >= 0
    assert_nothing_left(result)
    print(f"measured RTO {result.rto_seconds} s")
    assert service_of(world).check_overdue() is False  # a drill just passed

    # The probe certificate is recorded in production's audit log as revoked; the drill is audit-logged.
    platform = world.platform
    with platform.transaction() as session:
        actions = [r.action for r in session.scalars(select(AuditRecordRow))]
    assert "dr.probe_certificate" in actions and "dr.drill" in actions
    assert "certificate.record_external" in actions
    # ... and in production's CA as issued and revoked, so the next CRL and OCSP report it revoked.
    probe = next(r for r in result.report["production_records"] if r["action"] == "dr.probe_certificate")
    recorded = platform.services["ca"].get_certificate(int(probe["registered"]["certificate_id"]))
    assert recorded.status == "revoked" and recorded.profile == "dr-probe"
    assert "dr.probe_signature" in actions and "dr.probe_timestamp" in actions

    # The history lists it, and its signed PDF validates in pyHanko with the CJK font embedded.
    service = service_of(world)
    assert service.list_drills()[0]["id"] == result.id
    pdf = service.report_pdf(result.id)
    assert pdf is not None and result.report["report_signature"]["level"] in ("B-LT", "B-T")
    ca = platform.services["ca"]
    roots = [c.certificate for c in ca.list_cas() if c.is_root]
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.serialization import Encoding

    trust = [asn1_x509.Certificate.load(r.public_bytes(Encoding.DER)) for r in roots]
    reader = PdfFileReader(io.BytesIO(pdf))
    signature = reader.embedded_signatures[0]
    status_ = asyncio.run(
        async_validate_pdf_signature(signature, ValidationContext(trust_roots=trust, allow_fetching=False))
    )
    assert status_.intact and status_.valid, status_.pretty_print_details()
    assert status_.timestamp_validity is not None
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "CID TrueType" in fonts and "yes" in fonts.splitlines()[-1].split()[-5:]


def test_flipped_byte_in_a_restored_file_fails_the_drill_naming_the_file(
    drill_world: Callable[..., BackupWorld],
) -> None:
    world = drill_world(check_read_data=False)

    def damage(target: Path, manifest: Manifest) -> None:
        key = "database/hengxin.db"
        root, _, rest = key.partition("/")
        victim = target / manifest.roots[root].lstrip("/") / rest
        data = bytearray(victim.read_bytes())
        data[100] ^= 0xFF
        victim.write_bytes(bytes(data))

    result = service_of(world).run_drill(after_restore=damage)
    assert result.result == "failed" and result.exit_code == 2
    assert result.failing_step == "verify_files"
    assert result.error_code == "backup.integrity_failed"
    assert "database/hengxin.db" in (result.reason or "")
    assert_nothing_left(result)


def test_damaged_pack_in_the_repository_fails_the_drill_naming_the_pack(
    drill_world: Callable[..., BackupWorld],
) -> None:
    world = drill_world()
    packs = sorted((world.primary.path / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    victim = packs[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.chmod(0o600)
    victim.write_bytes(bytes(data))
    result = service_of(world).run_drill()
    assert result.result == "failed"
    assert result.failing_step == "check_repository"
    assert victim.name[:8] in (result.reason or ""), result.reason
    assert_nothing_left(result)


def test_wrong_repository_password_means_the_drill_could_not_run(drill_world: Callable[..., BackupWorld]) -> None:
    world = drill_world()
    world.platform.secrets.put("repo-primary", "not the password")
    result = service_of(world).run_drill()
    assert result.result == "could_not_run" and result.exit_code == 1
    assert result.error_code == "backup.wrong_password"
    assert result.failing_step == "select_snapshot"


def test_missing_master_passphrase_means_the_drill_could_not_run(
    drill_world: Callable[..., BackupWorld], tmp_path: Path
) -> None:
    world = drill_world(live_secrets=False, check_read_data=False)
    result = service_of(world).run_drill()
    assert result.result == "could_not_run"
    assert result.error_code == "dr.secrets_missing"
    assert result.failing_step == "start_sandbox"
    assert_nothing_left(result)
    # Supplied in an operator file, the same drill passes.
    secrets_file = tmp_path / "drill-secrets"
    name = world.platform.settings.keys.passphrase_secret
    secrets_file.write_text(f"{name}={world.platform.secrets.get(name)}\n")
    os.chmod(secrets_file, 0o600)
    assert service_of(world).run_drill(secrets_file=secrets_file).result == "passed"
    assert json.loads(json.dumps(service_of(world).get(service_of(world).list_drills()[0]["id"])))["result"] == "passed"

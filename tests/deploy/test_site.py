"""site.yml applied to this machine: what it deployed works, and a second run changes nothing."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.deployment import SECRETS, Deployment
from tests.deploy.harness import BASE_DN, SYNC_DN, Unit, recap

# Applying site.yml three times (install tag, whole, again) takes minutes.
pytestmark = pytest.mark.timeout(900)

UNITS = ("hengxin.service", "hengxin-postgresql.service", "hengxin-slapd.service", "hengxin-nginx.service")
#: Highest accepted `systemd-analyze security --offline=yes` exposure per
#: unit (measured: 1.2, 1.2, 1.7, 1.6, 2.6).  nginx's master keeps the
#: capabilities it needs to bind low ports and switch its workers' user.
EXPOSURE_LIMITS = {
    "hengxin.service": 1.5,
    "hengxin-backup@nightly.service": 1.5,
    "hengxin-postgresql.service": 2.0,
    "hengxin-slapd.service": 2.0,
    "hengxin-nginx.service": 3.0,
}


def _split_certificates(pem: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", pem, re.DOTALL)


def _root_and_intermediates(deployment: Deployment, tmp_path: Path) -> tuple[Path, Path]:
    """The self-signed root and the other CA certificates from the chain the roles installed."""
    chain = _split_certificates((deployment.nginx_tls_dir / "hengxin-ca.pem").read_text())
    roots: list[str] = []
    others: list[str] = []
    for certificate in chain:
        subject = subprocess.run(
            ["openssl", "x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253"],
            input=certificate,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        (roots if subject[0].split("=", 1)[1] == subject[1].split("=", 1)[1] else others).append(certificate)
    assert len(roots) == 1, "the CA chain must end in exactly one self-signed root"
    root, intermediates = tmp_path / "root.pem", tmp_path / "intermediates.pem"
    root.write_text(roots[0])
    intermediates.write_text("".join(others))
    return root, intermediates


def test_healthz_answers_through_nginx_with_a_certificate_from_the_new_root(
    deployment: Deployment, tmp_path: Path
) -> None:
    root, intermediates = _root_and_intermediates(deployment, tmp_path)
    port = deployment.ports["https"]
    presented = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", "-showcerts"],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    served = _split_certificates(presented)
    assert served, presented
    (tmp_path / "leaf.pem").write_text(served[0])
    (tmp_path / "served-chain.pem").write_text("".join(served[1:]))
    verified = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(root),
            "-untrusted",
            str(tmp_path / "served-chain.pem"),
            str(tmp_path / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0 and verified.stdout.strip().endswith("OK"), verified.stdout + verified.stderr

    context = ssl.create_default_context(cafile=str(root))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok"}
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert intermediates.read_text(), "the chain has an issuing CA below the root"


def test_client_certificate_header_from_a_client_is_not_passed_on(deployment: Deployment, tmp_path: Path) -> None:
    """nginx replaces a client's own X-SSL-Client-Cert with what it verified itself (nothing here)."""
    root, _ = _root_and_intermediates(deployment, tmp_path)
    nginx_conf = (deployment.prefix / "etc/nginx/hengxin/nginx.conf").read_text()
    assert "ssl_verify_client optional;" in nginx_conf
    assert "proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;" in nginx_conf
    request = urllib.request.Request(
        f"https://127.0.0.1:{deployment.ports['https']}/healthz", headers={"X-SSL-Client-Cert": "forged"}
    )
    context = ssl.create_default_context(cafile=str(root))
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        assert response.status == 200


def test_crl_is_served_over_plain_http(deployment: Deployment, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{deployment.ports['http']}/crl/root.crl"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    assert status == 200, body[:500]
    (tmp_path / "root.crl").write_bytes(body)
    parsed = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "root.crl"), "-noout", "-issuer", "-nextupdate"],
        capture_output=True,
        text=True,
    )
    assert parsed.returncode == 0, parsed.stderr
    assert "nextUpdate=" in parsed.stdout


def test_plain_http_host_serves_only_revocation_and_ca_paths(deployment: Deployment) -> None:
    base = f"http://127.0.0.1:{deployment.ports['http']}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/api/v1/audit", timeout=10)
    assert refused.value.code == 404
    assert refused.value.headers.get("Content-Type", "").startswith("text/html"), "answered by nginx, not Hengxin"


def test_sync_identity_binds_to_the_configured_slapd_over_starttls(deployment: Deployment) -> None:
    ca_file = deployment.prefix / "etc/ldap/hengxin-tls/hengxin-ca.pem"
    url = f"ldap://127.0.0.1:{deployment.ports['ldap']}"
    password = SECRETS["vault_hengxin_ldap_bind_password"]
    env = {"LDAPTLS_CACERT": str(ca_file), "LDAPTLS_REQCERT": "demand", "PATH": "/usr/bin:/bin"}
    whoami = subprocess.run(
        ["ldapwhoami", "-x", "-H", url, "-ZZ", "-D", SYNC_DN, "-w", password],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.strip() == f"dn:{SYNC_DN}"
    plain = subprocess.run(
        ["ldapwhoami", "-x", "-H", url, "-D", SYNC_DN, "-w", password],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert plain.returncode != 0 and "Confidentiality required" in plain.stderr
    wrong = subprocess.run(
        ["ldapwhoami", "-x", "-H", url, "-ZZ", "-D", SYNC_DN, "-w", "not-the-password"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert wrong.returncode == 49 or "Invalid credentials" in wrong.stderr


def test_slapd_runs_the_shipped_modules_overlay_and_acls(deployment: Deployment) -> None:
    socket = deployment.prefix / "run/slapd-hengxin/ldapi"
    url = "ldapi://" + str(socket).replace("/", "%2F")

    def search(base: str, *attributes: str) -> str:
        result = subprocess.run(
            ["ldapsearch", "-Q", "-LLL", "-o", "ldif-wrap=no", "-Y", "EXTERNAL", "-H", url, "-b", base, *attributes],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    modules = search("cn=module{0},cn=config", "olcModuleLoad")
    assert "argon2" in modules and "ppolicy" in modules
    database = search("olcDatabase={1}mdb,cn=config", "olcAccess", "olcSecurity")
    assert f'{{0}}to attrs=userPassword by dn.exact="{SYNC_DN}" write by anonymous auth by * none' in database
    assert "olcSecurity: simple_bind=128" in database
    overlay = search("olcOverlay={0}ppolicy,olcDatabase={1}mdb,cn=config", "olcPPolicyDefault")
    assert f"olcPPolicyDefault: cn=default,ou=policies,{BASE_DN}" in overlay
    tls = search("cn=config", "olcTLSCertificateFile", "olcTLSProtocolMin")
    assert "olcTLSProtocolMin: 3.3" in tls


def test_backup_schedule_exists_and_the_repository_is_initialised(deployment: Deployment) -> None:
    timer = deployment.unit_dir / "hengxin-backup-nightly.timer"
    text = timer.read_text()
    assert "OnCalendar=*-*-* 02:30:00 Asia/Shanghai" in text
    assert "Unit=hengxin-backup@nightly.service" in text
    service = deployment.unit_dir / "hengxin-backup@.service"
    assert re.search(r"^ExecStart=\S+/bin/hengxin --config \S+ backup run %i$", service.read_text(), re.MULTILINE)
    assert (deployment.prefix / "var/backups/hengxin/primary/config").exists()
    password = deployment.prefix / "etc/hengxin/secrets/backup-primary-password"
    assert password.stat().st_mode & 0o777 == 0o600


def test_backup_job_runs_from_its_unit(deployment: Deployment) -> None:
    """The timer's service, started as systemd would, backs up into the repository the role created."""
    unit = Unit.parse(deployment.unit_dir / "hengxin-backup@.service", instance="nightly")
    job = deployment.runner.start(unit)
    assert job.process.wait(timeout=300) == 0, job.log.read_text()
    password = deployment.prefix / "etc/hengxin/secrets/backup-primary-password"
    snapshots = subprocess.run(
        ["restic", "--no-cache", "--json", "snapshots"],
        env={
            "RESTIC_REPOSITORY": str(deployment.prefix / "var/backups/hengxin/primary"),
            "RESTIC_PASSWORD_FILE": str(password),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert snapshots.returncode == 0, snapshots.stderr
    assert len(json.loads(snapshots.stdout)) >= 1


def test_hengxin_publishes_to_the_slapd_the_role_configured(deployment: Deployment) -> None:
    """Hengxin's [directory] settings from the role reach slapd over StartTLS as the sync identity."""
    env = {
        "LDAPTLS_CACERT": str(deployment.prefix / "etc/hengxin/ca-chain.pem"),
        "LDAPTLS_REQCERT": "demand",
        "PATH": "/usr/bin:/bin",
    }
    command = [
        "ldapsearch",
        "-x",
        "-LLL",
        "-ZZ",
        "-H",
        f"ldap://127.0.0.1:{deployment.ports['ldap']}",
        "-D",
        SYNC_DN,
        "-w",
        SECRETS["vault_hengxin_ldap_bind_password"],
        "-b",
        BASE_DN,
        "-s",
        "one",
        "dn",
    ]
    deadline = time.monotonic() + 60
    while True:
        found = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)
        if f"dn: ou=people,{BASE_DN}" in found.stdout or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert f"dn: ou=people,{BASE_DN}" in found.stdout, found.stdout + found.stderr


def test_secrets_are_private_files(deployment: Deployment) -> None:
    secrets = deployment.prefix / "etc/hengxin/secrets"
    assert secrets.stat().st_mode & 0o777 == 0o700
    names = {path.name for path in secrets.iterdir()}
    assert {"master-passphrase", "database-password", "ldap-bind-password", "admin-token"} <= names
    for path in secrets.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_application_role_cannot_change_audit_records(deployment: Deployment) -> None:
    socket_dir = deployment.prefix / "run/postgresql-hengxin"
    query = (
        "SELECT has_table_privilege('hengxin_app', 'audit_records', 'INSERT'),"
        " has_table_privilege('hengxin_app', 'audit_records', 'UPDATE'),"
        " has_table_privilege('hengxin_app', 'audit_records', 'DELETE')"
    )
    result = subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-h",
            str(socket_dir),
            "-p",
            str(deployment.ports["postgresql"]),
            "-d",
            "hengxin",
            "-At",
            "-c",
            query,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t|f|f"


def test_log_retention_is_at_least_180_days(deployment: Deployment) -> None:
    journald = (deployment.prefix / "etc/systemd/journald.conf.d/60-hengxin-retention.conf").read_text()
    retention = re.search(r"^MaxRetentionSec=(\d+)d$", journald, re.MULTILINE)
    assert retention and int(retention.group(1)) >= 180
    for name in ("hengxin-nginx", "hengxin-slapd"):
        path = deployment.prefix / "etc/logrotate.d" / name
        text = path.read_text()
        rotate = re.search(r"rotate (\d+)", text)
        assert "daily" in text and rotate and int(rotate.group(1)) >= 180
        checked = subprocess.run(
            ["logrotate", "--debug", "--state", str(deployment.prefix / "test/logrotate.state"), str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, checked.stderr


def _verify_copies(deployment: Deployment, tmp_path: Path) -> list[Path]:
    """Every rendered unit, the backup template as an instance, in one directory."""
    units = tmp_path / "units"
    units.mkdir()
    for name in (*UNITS, "hengxin-backup-nightly.timer"):
        shutil.copy(deployment.unit_dir / name, units / name)
    shutil.copy(deployment.unit_dir / "hengxin-backup@.service", units / "hengxin-backup@.service")
    shutil.copy(deployment.unit_dir / "hengxin-backup@.service", units / "hengxin-backup@nightly.service")
    return [units / name for name in (*UNITS, "hengxin-backup@nightly.service", "hengxin-backup-nightly.timer")]


def test_every_rendered_unit_passes_systemd_analyze_verify(deployment: Deployment, tmp_path: Path) -> None:
    for unit in _verify_copies(deployment, tmp_path):
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=unit.parent
        )
        assert result.returncode == 0 and not result.stderr.strip(), f"{unit.name}: {result.stderr}"


def test_units_are_hardened(deployment: Deployment, tmp_path: Path) -> None:
    scores: dict[str, float] = {}
    for unit in _verify_copies(deployment, tmp_path):
        if unit.suffix != ".service":
            continue
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=unit.parent,
        )
        match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
        assert match, result.stdout + result.stderr
        scores[unit.name] = float(match.group(1))
    (deployment.prefix.parent / "hengxin-deploy-exposure.json").write_text(json.dumps(scores, indent=2))
    print("systemd-analyze security exposure:", json.dumps(scores))
    too_exposed = {name: score for name, score in scores.items() if score > EXPOSURE_LIMITS[name]}
    assert not too_exposed, scores


def test_services_run_the_command_lines_of_their_units(deployment: Deployment) -> None:
    for service in deployment.runner.services:
        if service.name.startswith("hengxin-backup@"):
            continue  # a oneshot job
        assert service.process.poll() is None, f"{service.name} exited:\n{service.log.read_text()}"
    started = {service.name for service in deployment.runner.services if service.name in {Path(n).stem for n in UNITS}}
    assert started == {Path(name).stem for name in UNITS}
    hengxin = deployment.unit("hengxin.service")
    assert hengxin.user == "hengxin" and hengxin.exec_start[-1] == "serve"
    for option in (
        "NoNewPrivileges",
        "ProtectSystem",
        "ReadWritePaths",
        "PrivateTmp",
        "ProtectHome",
        "CapabilityBoundingSet",
        "SystemCallFilter",
    ):
        assert option in hengxin.settings, option


def test_second_run_changes_nothing(deployment: Deployment) -> None:
    """Runs last in this module: a whole second application of site.yml."""
    started = time.monotonic()
    counts = recap(deployment.run_site())
    deployment.timings["second_site"] = time.monotonic() - started
    print("deployment timings (s):", json.dumps({k: round(v, 1) for k, v in deployment.timings.items()}))
    assert counts["failed"] == 0 and counts["unreachable"] == 0
    assert counts["changed"] == 0, counts

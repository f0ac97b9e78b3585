"""The deployment the tests look at: site.yml applied to this machine under a prefix."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.harness import (
    ANSIBLE_PLAYBOOK,
    BASE_DN,
    REPOSITORY,
    ServiceRunner,
    Unit,
    free_port,
    port_open,
    require_binary,
    run_playbook,
    wait_until,
    write_variables,
)

SECRETS = {
    "vault_hengxin_master_passphrase": "deploy-test-master-passphrase-0123456789",
    "vault_hengxin_database_password": "deploy-test-database-password-0123456789",
    "vault_hengxin_ldap_bind_password": "deploy-test-ldap-bind-password-0123456789",
    "vault_openldap_root_password": "deploy-test-ldap-root-password-0123456789",
    "vault_hengxin_backup_primary_password": "deploy-test-restic-password-0123456789",
}

SKELETON = (
    "etc/systemd/system",
    "etc/systemd/journald.conf.d",
    "etc/logrotate.d",
    "etc/ldap",
    "etc/nginx",
    "etc/postgresql/15",
    "var/lib/postgresql/15",
    "var/log/nginx",
    "var/cache/nginx",
    "var/backups",
    "run",
    "opt",
)


@dataclass
class Deployment:
    prefix: Path
    variables_file: Path
    log: Path
    ports: dict[str, int]
    runner: ServiceRunner
    timings: dict[str, float] = field(default_factory=dict)
    first_run_output: str = ""

    @property
    def unit_dir(self) -> Path:
        return self.prefix / "etc/systemd/system"

    def unit(self, name: str) -> Unit:
        return Unit.parse(self.unit_dir / name)

    @property
    def nginx_tls_dir(self) -> Path:
        return self.prefix / "etc/nginx/hengxin/tls"

    def run_site(self, *extra: str) -> str:
        return run_playbook("site.yml", self.variables_file, self.log, *extra)


def build_wheel(source: Path, wheelhouse: Path) -> None:
    """Build the hengxin wheel from a clean copy of the tree (setuptools leaves build/ behind)."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "var", "tests", "ansible", "bench"
    )
    shutil.copytree(REPOSITORY, source, ignore=ignore)
    subprocess.run(
        [str(REPOSITORY / ".venv/bin/pip"), "wheel", "-q", "--no-deps", "-w", str(wheelhouse), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(source)


def create_deployment() -> Deployment:
    """Apply site.yml (install tag, start the databases, whole play, start the rest)."""
    for binary, package in [
        (ANSIBLE_PLAYBOOK, "ansible"),
        ("nginx", "nginx"),
        ("slapd", "slapd"),
        ("ldapwhoami", "ldap-utils"),
        ("restic", "restic"),
        ("systemd-analyze", "systemd"),
        ("openssl", "openssl"),
        ("logrotate", "logrotate"),
        ("setfacl", "acl"),
    ]:
        if binary.startswith("/"):
            if not Path(binary).exists():
                raise AssertionError(f"{binary} is missing: apt-get install {package}")
        else:
            require_binary(binary, package)
    if not Path("/usr/lib/postgresql/15/bin/postgres").exists():
        raise AssertionError("PostgreSQL 15 is missing: apt-get install postgresql")

    # The prefix must be traversable by postgres, openldap, hengxin and www-data.
    prefix = Path(tempfile.mkdtemp(prefix="hx-deploy-", dir="/tmp"))
    prefix.chmod(0o755)
    # The prefix stands for "/": the directories a Debian system already has
    # exist, root-owned and 0755, so the roles create only their own.
    for skeleton in SKELETON:
        (prefix / skeleton).mkdir(mode=0o755, parents=True, exist_ok=True)
    work = prefix / "test"
    work.mkdir(mode=0o700)
    (work / "services").mkdir()
    log = work / "ansible.log"
    timings: dict[str, float] = {}

    started = time.monotonic()
    wheelhouse = work / "wheelhouse"
    build_wheel(work / "source", wheelhouse)
    timings["wheel"] = time.monotonic() - started

    ports = {name: free_port() for name in ("https", "http", "api", "postgresql", "ldap")}
    variables: dict[str, object] = {
        **SECRETS,
        "ansible_connection": "local",
        "ansible_host": "127.0.0.1",
        "ansible_python_interpreter": "/usr/bin/python3",
        "hengxin_prefix": str(prefix),
        "hengxin_manage_services": False,
        "hengxin_wheelhouse": str(wheelhouse),
        "hengxin_offline": False,
        "hengxin_environment": "development",
        "hengxin_public_name": "localhost",
        "hengxin_base_url": f"http://127.0.0.1:{ports['http']}",
        "hengxin_listen_port": ports["api"],
        "hengxin_database_port": ports["postgresql"],
        # A fast key-derivation cost keeps the test quick; production keeps the default.
        "hengxin_config_extra": {"keys": {"scrypt_log2_n": 14}},
        "postgresql_port": ports["postgresql"],
        "openldap_base_dn": BASE_DN,
        "openldap_port": ports["ldap"],
        "openldap_tls_dns_names": ["localhost"],
        "openldap_tls_ip_addresses": ["127.0.0.1"],
        "nginx_listen_address": "127.0.0.1",
        "nginx_https_port": ports["https"],
        "nginx_http_port": ports["http"],
        "nginx_server_names": ["localhost"],
        "nginx_tls_ip_addresses": ["127.0.0.1"],
        "backup_repositories": [
            {
                "name": "primary",
                "url": str(prefix / "var/backups/hengxin/primary"),
                "password_secret": "backup-primary-password",
                "password": SECRETS["vault_hengxin_backup_primary_password"],
            }
        ],
    }
    variables_file = work / "variables.json"
    write_variables(variables_file, variables)

    deployment = Deployment(prefix, variables_file, log, ports, ServiceRunner(work / "services"), timings)
    try:
        started = time.monotonic()
        deployment.run_site("--tags", "install")
        timings["install_tag"] = time.monotonic() - started

        postgres = deployment.runner.start(deployment.unit("hengxin-postgresql.service"))
        slapd = deployment.runner.start(deployment.unit("hengxin-slapd.service"))
        wait_until(lambda: port_open(ports["postgresql"]), "PostgreSQL", service=postgres)
        wait_until(lambda: (prefix / "run/slapd-hengxin/ldapi").exists(), "slapd", service=slapd)

        started = time.monotonic()
        deployment.first_run_output = deployment.run_site()
        timings["site"] = time.monotonic() - started

        hengxin = deployment.runner.start(deployment.unit("hengxin.service"))
        wait_until(lambda: _ready(ports["api"]), "hengxin /readyz", timeout=90, service=hengxin)
        nginx = deployment.runner.start(deployment.unit("hengxin-nginx.service"))
        wait_until(lambda: port_open(ports["https"]) and port_open(ports["http"]), "nginx", service=nginx)
    except BaseException:
        deployment.runner.stop_all()
        raise
    return deployment


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


def remove_deployment(deployment: Deployment) -> None:
    deployment.runner.stop_all()
    if os.environ.get("HENGXIN_KEEP_DEPLOYMENT") != "1":
        shutil.rmtree(deployment.prefix, ignore_errors=True)

"""Federation end to end: `hengxin directory import` from a second slapd, and login delegated to it by bind."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from api.platform import initialise, open_platform
from core.config import load_settings
from directory.service_errors import InvalidCredentials
from tests.fixtures.slapd import FEDERATION_BASE_DN, HengxinSlapd
from tests.integration.directory.conftest import password_hash
from tests.integration.directory.platforms import (
    audit_records,
    directory_settings,
    refusing_url,
    run_cli,
    service_of,
    user_count,
    write_config,
)


@pytest.fixture
def partner(federation_slapd: HengxinSlapd) -> HengxinSlapd:
    federation_slapd.ldapadd(
        f"""dn: ou=staff,{FEDERATION_BASE_DN}
objectClass: organizationalUnit
ou: staff

dn: uid=alice,ou=staff,{FEDERATION_BASE_DN}
objectClass: inetOrgPerson
uid: alice
cn: Alice Chen
sn: Chen
displayName:: {base64.b64encode("陈爱丽".encode()).decode()}
mail: alice@partner.example
employeeNumber: P-001
ou: Finance
userPassword: {{ARGON2}}{password_hash("Alice-Pass-1")}

dn: uid=bob,ou=staff,{FEDERATION_BASE_DN}
objectClass: inetOrgPerson
uid: bob
cn: Bob Liu
sn: Liu
mail: not an address
employeeNumber: P-002
userPassword: {{ARGON2}}{password_hash("Bob-Pass-2")}

dn: cn=finance-team,ou=staff,{FEDERATION_BASE_DN}
objectClass: groupOfNames
cn: finance-team
member: uid=alice,ou=staff,{FEDERATION_BASE_DN}
"""
    )
    return federation_slapd


@pytest.fixture
def config(tmp_path: Path, partner: HengxinSlapd) -> Path:
    settings = directory_settings(
        tmp_path,
        directory={
            "network_timeout_seconds": 1.0,
            "federation": [
                {
                    "name": "partner",
                    "url": partner.ldap_uri,
                    "base_dn": FEDERATION_BASE_DN,
                    "bind_dn": partner.root_dn,
                    "bind_password_secret": "partner-bind",
                    "user_filter": "(uid={login})",
                }
            ],
        },
    )
    initialise(settings)
    platform = open_platform(settings)
    platform.secrets.put("partner-bind", partner.root_pw)
    platform.close()
    return write_config(tmp_path / "hengxin.toml", settings)


def test_imported_users_authenticate_by_bind_to_their_directory(
    tmp_path: Path, config: Path, partner: HengxinSlapd, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, config, "department", "add", "fin", "Finance").code == 0
    result = run_cli(capsys, config, "directory", "import", "--federation", "partner", "--groups")
    assert result.code == 0, result.stderr
    assert "created 2, updated 0, skipped 0 user(s); created 1 group(s), added 1 membership(s)" in result.stdout

    platform = open_platform(load_settings(config))
    try:
        service = service_of(platform)
        alice = service.get_user("alice")
        assert (alice.display_name, alice.auth_source, alice.has_password) == ("陈爱丽", "ldap:partner", False)
        assert alice.department_code == "fin"  # the entry's ou names an existing department
        assert alice.external_dn == f"uid=alice,ou=staff,{FEDERATION_BASE_DN}"
        assert service.get_user("bob").email is None  # an invalid value is left out, not imported
        assert service.get_group("finance-team").members == ("alice",)

        assert service.authenticate("alice", "Alice-Pass-1", "10.1.1.1").login == "alice"
        with pytest.raises(InvalidCredentials):
            service.authenticate("alice", "Bob-Pass-2", "10.1.1.1")
        partner.pause()
        try:
            with pytest.raises(InvalidCredentials):
                service.authenticate("alice", "Alice-Pass-1", "10.1.1.1")
        finally:
            partner.resume()
        reasons = [r.details.get("reason") for r in audit_records(platform, "directory.authenticate")]
        assert reasons == [None, "wrong_password", "federation_unavailable"]
        assert service.get_user("alice").failed_logins == 1  # an unreachable directory is not the user's fault
        assert "directory.federation_unavailable" in [a.name for a in platform.alerts.history]
    finally:
        platform.close()

    again = run_cli(capsys, config, "directory", "import", "--federation", "partner")
    assert "created 0, updated 0, skipped 2" in again.stdout and "skipped alice: login exists" in again.stdout


def test_import_from_a_url_with_a_mapping_and_a_dry_run(
    tmp_path: Path, config: Path, partner: HengxinSlapd, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "bind-password"
    secret.write_text(partner.root_pw + "\n")
    secret.chmod(0o600)
    common = (
        "directory",
        "import",
        "--from",
        partner.ldap_uri,
        "--base",
        FEDERATION_BASE_DN,
        "--bind-dn",
        partner.root_dn,
        "--password-file",
        str(secret),
        "--map",
        "login=employeeNumber",
        "--filter",
        "(sn=Liu)",
    )
    dry = run_cli(capsys, config, *common, "--dry-run")
    assert dry.code == 0 and "dry run: would have created 1" in dry.stdout
    platform = open_platform(load_settings(config))
    try:
        assert user_count(platform) == 0
    finally:
        platform.close()
    real = run_cli(capsys, config, *common)
    assert real.code == 0 and "created 1" in real.stdout
    platform = open_platform(load_settings(config))
    try:
        user = service_of(platform).get_user("p-002")
        assert (user.display_name, user.auth_source) == ("Bob Liu", "local")
    finally:
        platform.close()


def test_import_from_a_url_that_refuses_is_one_line_and_writes_nothing(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(capsys, config, "directory", "import", "--from", refusing_url(), "--base", FEDERATION_BASE_DN)
    assert result.code == 69
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("hengxin: error: ") and line.endswith("[directory.ldap_unavailable]")
    platform = open_platform(load_settings(config))
    try:
        assert user_count(platform) == 0
    finally:
        platform.close()

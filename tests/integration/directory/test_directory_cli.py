"""``hengxin user|department|group|role`` and ``hengxin directory sync``, run through the real entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.platform import initialise, open_platform
from directory.ldap import LDAPDirectory
from directory.ldap_mapping import Entry, PublishedUser
from tests.fixtures.slapd import BASE_DN, HengxinSlapd
from tests.integration.directory.platforms import (
    GOOD_PASSWORD,
    audit_count,
    directory_settings,
    refusing_url,
    run_cli,
    user_count,
    write_config,
)
from tests.integration.directory.tools import ldapsearch, ldapwhoami


def instance(tmp_path: Path, *, slapd: HengxinSlapd | None = None, ldap_url: str | None = None) -> Path:
    settings = directory_settings(tmp_path, slapd=slapd, ldap_url=ldap_url)
    initialise(settings)
    if slapd is not None or ldap_url is not None:
        platform = open_platform(settings)
        platform.secrets.put(settings.directory.bind_password_secret, slapd.root_pw if slapd else "unused-password")
        platform.close()
    return write_config(tmp_path / "hengxin.toml", settings)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return instance(tmp_path)


def password_file(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "password.txt"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_user_department_group_and_role_commands(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def ok(*args: str) -> str:
        result = run_cli(capsys, config, *args)
        assert result.code == 0, (args, result.stderr)
        return result.stdout

    ok("department", "add", "county", "东城县人民政府")
    ok("department", "add", "finance", "财政局", "--parent", "county")
    ok("department", "add", "budget", "预算科", "--parent", "finance")
    assert "budget\t东城县人民政府/财政局/预算科" in ok("department", "list")
    assert "created person zhangwei (张伟)" in ok(
        "user",
        "add",
        "zhangwei",
        "--name",
        "张伟",
        "--email",
        "zhangwei@czj.gov.example",
        "-d",
        "budget",
        "--password-file",
        str(password_file(tmp_path, GOOD_PASSWORD)),
    )
    ok("user", "add", "svc-oa", "--name", "OA 系统", "--service")
    listed = ok("user", "list", "-d", "county", "--subdepartments").splitlines()
    assert [line for line in listed if "\t" in line] == ["zhangwei\tactive\t张伟\t东城县人民政府/财政局/预算科"]
    ok("role", "add", "approver", "-p", "directory.read", "-p", "signatures.create", "--display-name", "审批人")
    assert "zhangwei holds approver in finance" in ok("user", "grant-role", "zhangwei", "approver", "-d", "finance")
    ok("group", "add", "预算编制组")
    assert "1 members" in ok("group", "add-member", "预算编制组", "zhangwei")
    shown = ok("user", "show", "zhangwei")
    assert "display name: 张伟" in shown and "groups: 预算编制组" in shown and "approver (in finance)" in shown
    assert "status locked" in ok("user", "lock", "zhangwei", "--reason", "调岗")
    assert "status active" in ok("user", "unlock", "zhangwei")
    assert "password of zhangwei set" in ok(
        "user", "set-password", "zhangwei", "--password-file", str(password_file(tmp_path, "Another-Pass-22"))
    )
    ok("user", "revoke-role", "zhangwei", "approver", "-d", "finance")
    ok("role", "delete", "approver")
    assert "status disabled" in ok("user", "disable", "zhangwei")
    assert "moved department" in ok("department", "move", "budget", "--top")


def test_errors_are_one_line_with_the_code_and_change_nothing(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (
        ("department", "add", "county", "县政府"),
        ("department", "add", "finance", "财政局", "-p", "county"),
        ("user", "add", "zhangwei", "--name", "张伟"),
    ):
        assert run_cli(capsys, config, *args).code == 0
    settings = directory_settings(tmp_path)
    platform = open_platform(settings)
    try:
        before = (user_count(platform), audit_count(platform))
        cases = [
            (("user", "add", "ZhangWei", "--name", "张伟"), "directory.duplicate_login", 1),
            (("user", "add", "lina", "--name", "李娜", "-d", "nowhere"), "directory.department_not_found", 1),
            (("user", "add", "lina", "--name", "李娜", "--email", "not-an-address"), "directory.invalid_email", 1),
            (("department", "move", "county", "--parent", "finance"), "directory.department_cycle", 1),
            (
                ("user", "set-password", "zhangwei", "--password-file", str(password_file(tmp_path, "short"))),
                "directory.password_policy",
                1,
            ),
            (("user", "lock", "nobody"), "directory.user_not_found", 1),
            (("role", "add", "x", "-p", "root.everything"), "directory.unknown_permission", 1),
            (("directory", "sync"), "directory.ldap_disabled", 78),
        ]
        for args, code, exit_code in cases:
            result = run_cli(capsys, config, *args)
            lines = result.stderr.strip().splitlines()
            assert result.code == exit_code, (args, result.stderr)
            assert len(lines) == 1 and lines[0].startswith("hengxin: error: "), (args, result.stderr)
            assert lines[0].endswith(f"[{code}]"), (args, lines)
            assert "Traceback" not in result.stderr
        assert (user_count(platform), audit_count(platform)) == before
    finally:
        platform.close()


def test_sync_when_ldap_refuses_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = instance(tmp_path, ldap_url=refusing_url())
    assert run_cli(capsys, config, "user", "add", "zhangwei", "--name", "张伟").code == 0  # LDAP down: still stored
    result = run_cli(capsys, config, "directory", "sync")
    assert result.code == 69
    assert "published 0 change(s); 1 pending" in result.stdout
    assert result.stderr.strip().endswith("[directory.publish_incomplete]")
    full = run_cli(capsys, config, "directory", "sync", "--full")
    assert full.code == 69 and full.stderr.strip().endswith("[directory.ldap_unavailable]")
    assert len(full.stderr.strip().splitlines()) == 1


def test_sync_publishes_and_full_sync_reports_and_repairs_drift(
    tmp_path: Path, slapd: HengxinSlapd, capsys: pytest.CaptureFixture[str]
) -> None:
    config = instance(tmp_path, slapd=slapd)
    pw = str(password_file(tmp_path, GOOD_PASSWORD))
    for args in (
        ("department", "add", "county", "县政府"),
        ("user", "add", "zhangwei", "--name", "张伟", "-d", "county", "--password-file", pw),
        ("user", "add", "lina", "--name", "李娜"),
        ("group", "add", "全体"),
        ("group", "add-member", "全体", "zhangwei"),
    ):
        assert run_cli(capsys, config, *args).code == 0, args
    synced = run_cli(capsys, config, "directory", "sync")
    assert synced.code == 0 and "published 5 change(s); 0 pending" in synced.stdout
    assert ldapwhoami(slapd.ldap_uri, f"uid=zhangwei,ou=people,{BASE_DN}", GOOD_PASSWORD).returncode == 0

    # Someone edits LDAP behind Hengxin's back.
    with LDAPDirectory(slapd.ldap_uri, BASE_DN, bind_dn=slapd.root_dn, password=slapd.root_pw) as tamper:
        tamper.delete_user("lina")
        tamper.apply_entry(tamper.layout.user_entry(PublishedUser(login="intruder", display_name="Intruder")))
        entry = tamper.search_user("zhangwei")
        assert entry is not None
        attributes = dict(entry.attributes)
        attributes["displayName"] = ("张三".encode(),)
        tamper.apply_entry(Entry(entry.dn, attributes))

    check = run_cli(capsys, config, "directory", "sync", "--full", "--check")
    assert check.code == 1 and check.stderr.strip().endswith("[directory.drift]")
    assert f"missing uid=lina,ou=people,{BASE_DN}" in check.stdout
    assert f"extra uid=intruder,ou=people,{BASE_DN}" in check.stdout
    assert f"changed uid=zhangwei,ou=people,{BASE_DN}: displayName" in check.stdout

    repaired = run_cli(capsys, config, "directory", "sync", "--full")
    assert repaired.code == 0 and "repaired 3 difference(s)" in repaired.stdout
    assert run_cli(capsys, config, "directory", "sync", "--full", "--check").code == 0
    ((_, zhang),) = ldapsearch(slapd.ldap_uri, f"uid=zhangwei,ou=people,{BASE_DN}", "displayName", scope="base")
    assert zhang["displayname"] == ["张伟".encode()]
    status = run_cli(capsys, config, "directory", "status")
    assert status.code == 0 and "pending: 0" in status.stdout

"""LDAPDirectory construction rules and package boundaries (no server needed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import directory
from directory.errors import LDAPConfigurationError, LDAPInvalidCredentials
from directory.ldap import LDAPDirectory

BASE = "dc=gov,dc=example"
PACKAGE = Path(directory.__file__).parent


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("http://ldap.example", {}),
        ("", {}),
        ("ldaps://ldap.example", {"start_tls": True}),
        ("ldap://ldap.example", {"bind_dn": "cn=sync", "password": ""}),
        ("ldap://ldap.example", {"bind_dn": "cn=sync"}),
        ("ldap://ldap.example", {"password": "x"}),
        ("ldap://ldap.example", {"user_filter": "(uid=*)"}),
    ],
)
def test_unusable_configurations_are_refused(url: str, kwargs: dict) -> None:
    with pytest.raises(LDAPConfigurationError):
        LDAPDirectory(url, BASE, **kwargs)


def test_repr_never_shows_the_password() -> None:
    adapter = LDAPDirectory("ldap://127.0.0.1:1", BASE, bind_dn="cn=sync", password="top-secret-9")
    assert "top-secret-9" not in repr(adapter)
    assert "top-secret-9" not in repr(vars(adapter))


def test_empty_password_is_refused_before_contacting_the_server() -> None:
    adapter = LDAPDirectory("ldap://127.0.0.1:1", BASE)
    with pytest.raises(LDAPInvalidCredentials):
        adapter.authenticate_dn(f"uid=a,ou=people,{BASE}", "")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_adapter_imports_python_ldap_and_directory_stays_in_its_lane() -> None:
    forbidden = {"ca", "timestamp", "signing", "api", "fastapi", "typer"}
    for path in PACKAGE.rglob("*.py"):
        imported = _imports(path)
        assert not imported & forbidden, path
        if path.name != "ldap.py":
            assert not imported & {"ldap", "ldif", "slapdtest"}, path

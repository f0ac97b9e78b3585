"""The shipped slapd configuration files and their placeholder renderer."""

from __future__ import annotations

import re

import pytest

from core.errors import ConfigurationError
from directory.slapd import CONFIG_FILES, DATA_FILES, TLS_FILE, config_path, render_config

VALUES = {"BASE_DN": "dc=gov,dc=example", "SYNC_PASSWORD_HASH": "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"}


@pytest.mark.parametrize("name", [*CONFIG_FILES, *DATA_FILES])
def test_every_shipped_file_renders_without_leftover_placeholders(name: str) -> None:
    text = render_config(name, **VALUES)
    assert not re.search(r"@[A-Z_]+@", text)
    assert "dc=gov,dc=example" in text or name == "10-modules.ldif"


def test_acl_names_the_sync_identity_derived_from_the_base() -> None:
    text = render_config("30-acl.ldif", BASE_DN="dc=gov,dc=example")
    assert 'dn.exact="cn=hengxin-sync,dc=gov,dc=example" write' in text
    assert "olcDatabase={1}mdb,cn=config" in text


def test_missing_values_and_multiline_values_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="TLS_CERT_FILE"):
        render_config(TLS_FILE)
    with pytest.raises(ConfigurationError):
        render_config("30-acl.ldif", BASE_DN="dc=x\nolcAccess: to * by * write")
    with pytest.raises(ConfigurationError):
        render_config("../ldap.py")


def test_readme_is_shipped() -> None:
    assert "ldapmodify" in config_path("README.md").read_text(encoding="utf-8")

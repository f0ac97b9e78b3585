"""The [directory] and [passwords] configuration sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_settings, sample_config
from core.errors import ConfigurationError


def test_defaults_publish_nothing_and_hash_with_owasp_parameters(tmp_path: Path) -> None:
    config = tmp_path / "hengxin.toml"
    config.write_text(sample_config())
    settings = load_settings(config)
    assert settings.directory.enabled is False and settings.directory.federation == []
    assert (settings.passwords.argon2_time_cost, settings.passwords.argon2_memory_kib) == (2, 19456)


def test_federation_entries_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "hengxin.toml"
    entry = '[[directory.federation]]\nname = "ad"\nurl = "ldaps://dc.example"\nbase_dn = "dc=example"\n'
    config.write_text(
        entry + 'user_filter = "(sAMAccountName={login})"\n[directory.federation.attributes]\n'
        'login = "sAMAccountName"\n'
    )
    settings = load_settings(config)
    assert settings.directory.federation[0].attributes == {"login": "sAMAccountName"}
    for bad, key in (
        (entry + 'user_filter = "(uid=x)"\n', "user_filter"),
        (entry + entry, "federation"),
        (entry + 'ca_file = "relative.pem"\n', "ca_file"),
        ("[directory]\nsurprise = 1\n", "directory.surprise"),
        ("[passwords]\nargon2_memory_kib = 8\nargon2_parallelism = 2\n", "argon2_parallelism"),
    ):
        config.write_text(bad)
        with pytest.raises(ConfigurationError, match=key):
            load_settings(config)


def test_publishing_needs_a_url_and_production_needs_tls() -> None:
    from api.components.directory import check_settings
    from core.config import Settings

    with pytest.raises(ConfigurationError, match="ldap_url"):
        check_settings(Settings(directory={"enabled": True}))
    production = {"environment": "production", "base_url": "http://pki.gov.example"}
    plain = {"enabled": True, "ldap_url": "ldap://ldap.gov.example"}
    with pytest.raises(ConfigurationError, match="start_tls"):
        check_settings(Settings(instance=production, directory=plain))
    check_settings(Settings(instance=production, directory={**plain, "start_tls": True}))
    check_settings(Settings(instance=production, directory={**plain, "ldap_url": "ldaps://ldap.gov.example"}))
    check_settings(Settings(directory=plain))  # development: allowed
    federation = [{"name": "ad", "url": "ldap://dc.gov.example", "base_dn": "dc=gov,dc=example"}]
    with pytest.raises(ConfigurationError, match="ad"):
        check_settings(Settings(instance=production, directory={"federation": federation}))

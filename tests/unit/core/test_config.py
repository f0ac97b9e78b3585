from pathlib import Path

import pytest

from core.config import Settings, check_production_safety, load_settings, sample_config
from core.errors import ConfigurationError


def test_unknown_key_is_refused_with_its_name(tmp_path: Path) -> None:
    config = tmp_path / "hengxin.toml"
    config.write_text("[server]\nport = 8001\nbogus_option = 1\n")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(config)
    assert "unknown configuration key 'server.bogus_option'" in caught.value.detail


def test_unknown_section_is_refused_with_its_name(tmp_path: Path) -> None:
    config = tmp_path / "hengxin.toml"
    config.write_text("[serverr]\nport = 8001\n")
    with pytest.raises(ConfigurationError, match="unknown configuration key 'serverr'"):
        load_settings(config)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hengxin.toml"
    config.write_text("[server]\nport = 8001\n")
    monkeypatch.setenv("HENGXIN_SERVER__PORT", "9002")
    assert load_settings(config).server.port == 9002


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "hengxin.toml"
    config.write_text('[instance]\ndata_dir = "../data"\n')
    settings = load_settings(config)
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.key_directory == settings.data_dir / "keys"
    assert settings.database_url == f"sqlite:///{settings.data_dir / 'hengxin.db'}"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_bad_value_names_key_and_reason(tmp_path: Path) -> None:
    config = tmp_path / "hengxin.toml"
    config.write_text('[instance]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigurationError, match="instance.timezone"):
        load_settings(config)


def test_sample_config_is_complete_and_loads_back(tmp_path: Path) -> None:
    text = sample_config()
    for section in Settings.model_fields:
        assert f"[{section}]" in text
    assert "# Requests per minute per client address" in text
    # Lists of tables are documented by a commented example listing their fields.
    assert "# [[backup.repositories]]" in text and "# password_secret = " in text
    config = tmp_path / "sample.toml"
    config.write_text(text)
    loaded = load_settings(config)
    assert loaded.server.port == 8000
    assert loaded.keys.directory is None  # empty string means "derive from data_dir"
    assert loaded.instance.timezone == "Asia/Shanghai"


def test_production_refuses_passphrase_next_to_keys(tmp_path: Path) -> None:
    config = tmp_path / "hengxin.toml"
    config.write_text('[instance]\nenvironment = "production"\nbase_url = "http://pki.gov.example"\n')
    problems = check_production_safety(load_settings(config))
    assert any("master passphrase" in p for p in problems)
    config.write_text(
        '[instance]\nenvironment = "production"\nbase_url = "http://pki.gov.example"\ndata_dir = "data"\n'
        f'[secrets]\ndirectory = "{tmp_path / "elsewhere"}"\n'
    )
    assert check_production_safety(load_settings(config)) == []


def test_schema_owner_may_have_its_own_database_password(tmp_path: Path) -> None:
    from api.platform import admin_database_password
    from core.secrets import FileSecretStore

    secrets = FileSecretStore(tmp_path / "secrets")
    secrets.put("app-db", "app-password")
    secrets.put("owner-db", "owner-password")
    config = tmp_path / "hengxin.toml"
    config.write_text('[database]\npassword_secret = "app-db"\n')
    assert admin_database_password(load_settings(config), secrets) == "app-password"
    config.write_text('[database]\npassword_secret = "app-db"\nadmin_password_secret = "owner-db"\n')
    assert admin_database_password(load_settings(config), secrets) == "owner-password"

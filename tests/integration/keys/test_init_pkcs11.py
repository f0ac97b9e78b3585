"""``hengxin init --keys pkcs11`` on a real SoftHSM2 token: the hierarchy is made in the token and works."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app
from api.platform import open_platform
from ca.service import CAService
from core.config import load_settings
from tests.fixtures.softhsm import SoftHSM
from tests.integration.keys.pki_checks import assert_openssl_verifies, issue_server_certificate
from tests.secret_scan import find_private_keys, find_strings


def test_init_with_pkcs11_creates_the_hierarchy_in_the_token(softhsm: SoftHSM, tmp_path: Path) -> None:
    token = softhsm.new_token()
    config = tmp_path / "instance" / "hengxin.toml"  # data_dir "." is the configuration's directory
    runner = CliRunner()

    refused = runner.invoke(app, ["--config", str(config), "init", "--keys", "pkcs11"])
    assert refused.exit_code != 0
    message = refused.output + str(refused.exception)  # api.cli.main renders it; the bare app raises it
    assert "--pkcs11-token-label" in message and "--pkcs11-pin-file" in message
    assert not config.exists()

    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin)
    result = runner.invoke(app, ["--config", str(config), "init", "--keys", "pkcs11", "--pkcs11-module",
                                 str(token.module), "--pkcs11-token-label", token.label, "--pkcs11-pin-file",
                                 str(pin_file)])
    assert result.exit_code == 0, result.output
    for label in ("ca:root", "ca:issuing", "ocsp:root", "ocsp:issuing", "custodial:platform:tsa", "audit"):
        assert f"key pkcs11 {label} " in result.output, result.output
    assert token.pin not in config.read_text()

    settings = load_settings(config)
    assert settings.keys.backend == "pkcs11" and settings.keys.pkcs11_token_label == token.label
    platform = open_platform(settings)
    try:
        with TestClient(create_app(settings, platform)) as client:
            assert client.get("/readyz").status_code == 200
        service = platform.services["ca"]
        assert isinstance(service, CAService)
        leaf = issue_server_certificate(service, "hsm.example.gov.cn")
        assert_openssl_verifies(tmp_path, leaf, service.get_ca("root").certificate,
                                [service.get_ca("issuing").certificate])
        key_ids = {info.key_id for info in platform.keystore.list_keys()}
    finally:
        platform.close()

    objects = softhsm.private_key_objects(token.label)
    assert len(objects) == len(key_ids) >= 6
    for attributes in objects:
        assert attributes["CKA_SENSITIVE"] is True
        assert attributes["CKA_EXTRACTABLE"] is False
        assert attributes["CKA_NEVER_EXTRACTABLE"] is True
    assert find_private_keys(settings.data_dir) == []
    # The PIN is in the secret store only.
    assert find_strings(settings.data_dir, [token.pin.encode()]) == [
        f"{settings.data_dir / 'secrets' / 'hsm-pin'}: contains a secret"
    ]

"""Every key store backend under a whole platform: CA, OCSP, CRL, TSA, JWT and PDF signatures.

For each backend (file; pkcs11 on a real SoftHSM2 token; vault on a real
``bao server -dev``) a platform is initialised and what it signs is checked by
independent verifiers: openssl (verify, crl, ts -verify), pyjwt, pyHanko.
Then the failure modes: a wrong PIN, a missing token, a sealed or stopped
Vault give a clear error, make /readyz not ready, and leave nothing half-issued.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.platform import Platform, initialise, open_platform
from ca.models import ISSUED, CertificateRow
from ca.service import CAService
from core.config import Settings
from core.errors import HengxinError
from core.keys.factory import open_secret_store
from tests.fixtures.openbao import OpenBao
from tests.fixtures.softhsm import SoftHSM
from tests.helpers import make_settings
from tests.integration.keys.pki_checks import (
    assert_openssl_verifies,
    issue_server_certificate,
    ocsp_status,
    openssl,
    pem,
    write,
)
from tests.keys_helpers import assert_pyhanko_signs_and_validates
from tests.secret_scan import find_private_keys

BACKENDS = ["file", "pkcs11", "vault"]


def _settings(backend: str, directory: Path, softhsm: SoftHSM, openbao: OpenBao) -> Settings:
    if backend == "file":
        return make_settings(directory / "var")
    if backend == "pkcs11":
        token = softhsm.new_token()
        settings = make_settings(directory / "var", keys={
            "backend": "pkcs11", "pkcs11_module": str(token.module), "pkcs11_token_label": token.label})
        settings.data_dir.mkdir(parents=True, mode=0o700)
        open_secret_store(settings).put("hsm-pin", token.pin)
        return settings
    token_file = directory / "vault-token"
    token_file.write_text(openbao.root_token)
    token_file.chmod(0o600)
    return make_settings(directory / "var", keys={
        "backend": "vault", "vault_url": openbao.url, "vault_token_file": str(token_file)})


@pytest.fixture(scope="module", params=BACKENDS)
def platform(
    request: pytest.FixtureRequest, softhsm: SoftHSM, openbao: OpenBao, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    settings = _settings(request.param, tmp_path_factory.mktemp(request.param), softhsm, openbao)
    initialise(settings)
    opened = open_platform(settings)
    try:
        yield opened
    finally:
        opened.close()


def _ca(platform: Platform) -> CAService:
    service = platform.services["ca"]
    assert isinstance(service, CAService)
    return service


def test_certificates_ocsp_and_crls_verify_with_openssl(platform: Platform, tmp_path: Path) -> None:
    service = _ca(platform)
    root, issuing = service.get_ca("root").certificate, service.get_ca("issuing").certificate
    leaf = issue_server_certificate(service, f"{platform.settings.keys.backend}.example.gov.cn")
    assert_openssl_verifies(tmp_path, leaf, root, [issuing])
    assert ocsp_status(service, leaf, issuing) == "good"
    service.revoke(format(leaf.serial_number, "x"), reason="keyCompromise", actor="test")
    assert ocsp_status(service, leaf, issuing) == "revoked"
    crls = [service.publish_crl("issuing").pem, service.publish_crl("root").pem]
    output = assert_openssl_verifies(tmp_path, leaf, root, [issuing], crls=crls, expect_ok=False)
    assert "certificate revoked" in output
    result = openssl("crl", "-noout", "-CAfile", write(tmp_path, "ca.pem", pem([issuing, root])),
                     "-in", write(tmp_path, "issuing.crl", crls[0]))
    assert result.returncode == 0 and "verify OK" in result.stdout + result.stderr, result.stdout + result.stderr


def test_tsa_token_passes_openssl_ts_verify(platform: Platform, tmp_path: Path) -> None:
    tsa = platform.services["tsa"]
    data = write(tmp_path, "data.txt", "恒信 timestamp matrix".encode())
    query = tmp_path / "req.tsq"
    assert openssl("ts", "-query", "-data", data, "-cert", "-sha256", "-out", str(query)).returncode == 0
    response = tsa.stamp(query.read_bytes(), actor="test")
    assert response.granted
    service = _ca(platform)
    credentials = tsa.credentials
    chain = [c.certificate for c in service.list_cas() if not c.is_root] + [credentials.certificate]
    result = openssl("ts", "-verify", "-in", write(tmp_path, "resp.tsr", response.der), "-queryfile", str(query),
                     "-CAfile", write(tmp_path, "root.pem", pem([service.get_ca("root").certificate])),
                     "-untrusted", write(tmp_path, "chain.pem", pem(chain)))
    assert result.returncode == 0 and "Verification: OK" in result.stdout, result.stdout + result.stderr


def test_jwt_and_pdf_signatures_verify(platform: Platform) -> None:
    store = platform.keystore
    info = store.generate("matrix jwt", "ec-p256")
    token = jwt.encode({"sub": "张伟"}, store.private_key(info.key_id), algorithm="ES256")
    assert jwt.decode(token, info.public_key(), algorithms=["ES256"]) == {"sub": "张伟"}
    assert_pyhanko_signs_and_validates(store, info.key_id)


def test_no_private_key_structure_under_var_or_in_the_database(platform: Platform) -> None:
    # The file backend's keys are sealed with AES-GCM, so no structure shows for it either.
    assert find_private_keys(platform.settings.data_dir) == []


# -- failures ---------------------------------------------------------------------------------------------


def _issued(platform: Platform) -> int:
    with platform.transaction() as session:
        query = select(func.count()).select_from(CertificateRow).where(CertificateRow.status == ISSUED)
        return session.scalar(query) or 0


def _assert_failure_is_clear(platform: Platform, break_it: Callable[[], Any], code_prefix: str) -> None:
    """After ``break_it``: /readyz is not ready, issuing fails with a ``code_prefix`` error, nothing issued."""
    service = _ca(platform)
    before = _issued(platform)
    break_it()
    with TestClient(create_app(platform.settings, platform)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503, ready.text
    with pytest.raises(HengxinError) as raised:
        issue_server_certificate(service, "broken.example.gov.cn")
    assert raised.value.code.startswith(code_prefix), raised.value.code
    assert "root-" not in str(raised.value)  # no token in the message
    assert _issued(platform) == before


@pytest.mark.parametrize("how", ["wrong_pin", "token_missing"])
def test_wrong_hsm_pin_or_missing_token_stops_the_start_with_a_clear_error(
    how: str, softhsm: SoftHSM, openbao: OpenBao, tmp_path: Path
) -> None:
    settings = _settings("pkcs11", tmp_path, softhsm, openbao)
    initialise(settings)
    if how == "wrong_pin":
        open_secret_store(settings).put("hsm-pin", "000000")
        code = "keys.hsm_pin_incorrect"
    else:
        keys = settings.keys.model_copy(update={"pkcs11_token_label": "absent"})
        settings = settings.model_copy(update={"keys": keys})
        code = "keys.hsm_token_missing"
    with pytest.raises(HengxinError) as raised:
        open_platform(settings).close()
    assert raised.value.code == code
    assert "000000" not in str(raised.value)


def removed_token_scenario(settings_json: str, token_directory: str) -> None:
    """Run in a child process: serve, remove the token's files, then check /readyz and issuance.

    SoftHSM2 scans its tokens once per process, and a token that vanishes stays broken for that
    process even after its files come back, so this runs in a process of its own.
    """
    settings = Settings.model_validate_json(settings_json)
    platform = open_platform(settings)
    moved = Path(token_directory + ".removed")
    try:
        _assert_failure_is_clear(platform, lambda: Path(token_directory).rename(moved), "keys.")
    finally:
        if moved.exists():
            moved.rename(token_directory)
        platform.close()


def test_token_removed_while_running_makes_readyz_not_ready(
    softhsm: SoftHSM, openbao: OpenBao, tmp_path: Path
) -> None:
    settings = _settings("pkcs11", tmp_path, softhsm, openbao)
    initialise(settings)
    token_directory = softhsm.token_directory(settings.keys.pkcs11_token_label)
    code = (
        "import sys; from tests.integration.keys.test_backend_matrix import removed_token_scenario; "
        "removed_token_scenario(sys.argv[1], sys.argv[2])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, settings.model_dump_json(), str(token_directory)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[3],
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


@pytest.mark.parametrize("how", ["sealed", "stopped"])
def test_vault_sealed_or_unreachable(
    how: str, openbao_factory: Callable[[], OpenBao], softhsm: SoftHSM, tmp_path: Path
) -> None:
    server = openbao_factory()
    settings = _settings("vault", tmp_path, softhsm, server)
    initialise(settings)
    platform = open_platform(settings)
    try:
        _assert_failure_is_clear(platform, server.seal if how == "sealed" else server.stop,
                                 "keys.vault_sealed" if how == "sealed" else "keys.vault_unreachable")
    finally:
        platform.close()

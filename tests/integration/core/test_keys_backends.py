"""Every key store backend, opened from settings by the factory, through the whole signing chain.

SoftHSM2 (PKCS#11) and an OpenBao dev server (Vault Transit) are real; what
they sign is checked by independent verifiers: openssl for certificates,
pyjwt for JWTs, pyHanko's validator for PDF signatures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from core.keys.base import KeyAlgorithm, KeyInfo, KeyStore
from core.keys.factory import open_keystore, open_secret_store
from core.keys.pkcs11 import PKCS11KeyStore
from core.keys.vault import VaultKeyStore, VaultSecretStore
from tests.fixtures.openbao import OpenBao
from tests.fixtures.softhsm import SoftHSM
from tests.helpers import make_settings
from tests.keys_helpers import (
    assert_openssl_verifies,
    assert_pyhanko_signs_and_validates,
    self_signed_certificate,
    signatures_per_second,
)

BACKENDS = ["pkcs11", "vault"]


def _token_file(directory: Path, token: str) -> Path:
    path = directory / "vault-token"
    path.write_text(token)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def stores(
    softhsm: SoftHSM, openbao: OpenBao, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, KeyStore]]:
    """One store per backend, each opened by ``open_keystore`` from settings."""
    opened: dict[str, KeyStore] = {}

    file_dir = tmp_path_factory.mktemp("file-backend")
    file_settings = make_settings(file_dir)
    file_secrets = open_secret_store(file_settings)
    file_secrets.put("master-passphrase", "correct horse battery staple")
    opened["file"] = open_keystore(file_settings, file_secrets)

    token = softhsm.new_token()
    hsm_dir = tmp_path_factory.mktemp("pkcs11-backend")
    hsm_settings = make_settings(
        hsm_dir,
        keys={"backend": "pkcs11", "pkcs11_module": str(token.module), "pkcs11_token_label": token.label},
    )
    hsm_secrets = open_secret_store(hsm_settings)
    hsm_secrets.put("hsm-pin", token.pin)
    opened["pkcs11"] = open_keystore(hsm_settings, hsm_secrets)

    vault_dir = tmp_path_factory.mktemp("vault-backend")
    vault_settings = make_settings(
        vault_dir,
        keys={
            "backend": "vault",
            "vault_url": openbao.url,
            "vault_token_file": str(_token_file(vault_dir, openbao.root_token)),
        },
    )
    opened["vault"] = open_keystore(vault_settings, open_secret_store(vault_settings))

    yield opened
    for store in opened.values():
        store.close()


@pytest.fixture(scope="module")
def keys(stores: dict[str, KeyStore]) -> dict[str, dict[KeyAlgorithm, KeyInfo]]:
    return {
        backend: {
            algorithm: stores[backend].generate(f"{backend} {algorithm.value}", algorithm) for algorithm in KeyAlgorithm
        }
        for backend in BACKENDS
    }


def test_the_factory_opens_the_configured_backends(stores: dict[str, KeyStore]) -> None:
    assert isinstance(stores["pkcs11"], PKCS11KeyStore)
    assert isinstance(stores["vault"], VaultKeyStore)
    for store in stores.values():
        store.check()


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
@pytest.mark.parametrize("backend", BACKENDS)
def test_adapter_signs_certificates_that_openssl_verifies(
    stores: dict[str, KeyStore],
    keys: dict[str, dict[KeyAlgorithm, KeyInfo]],
    backend: str,
    algorithm: KeyAlgorithm,
    tmp_path: Path,
) -> None:
    store = stores[backend]
    info = keys[backend][algorithm]
    certificate = self_signed_certificate(store.private_key(info.key_id), algorithm)
    assert certificate.public_key() == info.public_key()
    assert_openssl_verifies(certificate, tmp_path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pyjwt_tokens_signed_through_the_adapter_verify_with_the_public_key(
    stores: dict[str, KeyStore], keys: dict[str, dict[KeyAlgorithm, KeyInfo]], backend: str
) -> None:
    store = stores[backend]
    for algorithm, jwt_algorithm in [
        (KeyAlgorithm.EC_P256, "ES256"),
        (KeyAlgorithm.EC_P384, "ES384"),
        (KeyAlgorithm.RSA_2048, "RS256"),
        (KeyAlgorithm.RSA_2048, "PS256"),
        (KeyAlgorithm.ED25519, "EdDSA"),
    ]:
        info = keys[backend][algorithm]
        token = jwt.encode({"sub": "张伟", "backend": backend}, store.private_key(info.key_id), algorithm=jwt_algorithm)
        claims = jwt.decode(token, info.public_key(), algorithms=[jwt_algorithm])
        assert claims == {"sub": "张伟", "backend": backend}


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048, KeyAlgorithm.ED25519])
@pytest.mark.parametrize("backend", BACKENDS)
def test_pyhanko_signer_signs_a_pdf_that_pyhanko_validates(
    stores: dict[str, KeyStore], keys: dict[str, dict[KeyAlgorithm, KeyInfo]], backend: str, algorithm: KeyAlgorithm
) -> None:
    assert_pyhanko_signs_and_validates(stores[backend], keys[backend][algorithm].key_id)


def test_the_hsm_pin_can_come_from_vault_kv(softhsm: SoftHSM, openbao: OpenBao, tmp_path: Path) -> None:
    token = softhsm.new_token()
    settings = make_settings(
        tmp_path,
        keys={"backend": "pkcs11", "pkcs11_module": str(token.module), "pkcs11_token_label": token.label},
        secrets={
            "backend": "vault",
            "vault_url": openbao.url,
            "vault_token_file": str(_token_file(tmp_path, openbao.root_token)),
            "vault_kv_prefix": "hengxin-integration/",
        },
    )
    secrets = open_secret_store(settings)
    assert isinstance(secrets, VaultSecretStore)
    secrets.put("hsm-pin", token.pin)
    store = open_keystore(settings, secrets)
    try:
        store.check()
        info = store.generate("pin from vault", "ec-p256")
        assert store.list_keys() == [info]
    finally:
        store.close()
        secrets.close()


def test_ec_p256_signatures_per_second(
    stores: dict[str, KeyStore], keys: dict[str, dict[KeyAlgorithm, KeyInfo]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A first throughput figure per backend for the lead (printed, not asserted)."""
    rates = {}
    for backend, store in stores.items():
        if backend in keys:
            key_id = keys[backend][KeyAlgorithm.EC_P256].key_id
        else:
            key_id = store.generate("rate", "ec-p256").key_id
        rates[backend] = signatures_per_second(store, key_id, seconds=1.0)
    with capsys.disabled():
        print("\nEC P-256 signatures/s (one thread): " + ", ".join(f"{b} {r:,.0f}" for b, r in rates.items()))

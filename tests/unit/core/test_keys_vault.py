"""The Vault Transit key store and KV secret store against a real OpenBao dev server.

The shared server (``openbao``) serves everything that leaves it usable; tests
that stop or seal a server start their own (``openbao_factory``).  Key
configuration is read back over plain HTTP with the root token, not through the
store under test.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from core.config import KeySettings, SecretSettings
from core.errors import (
    ConfigurationError,
    HengxinError,
    InsecureSecretFile,
    InvalidInput,
    KeyNotFound,
    KeyStoreUnavailable,
    SecretNotFound,
    UnsupportedAlgorithm,
)
from core.keys.base import KeyAlgorithm, KeyInfo, SignatureScheme
from core.keys.vault import (
    VaultConnection,
    VaultError,
    VaultKeyExportable,
    VaultKeyStore,
    VaultPermissionDenied,
    VaultSealed,
    VaultSecretsPermissionDenied,
    VaultSecretsSealed,
    VaultSecretStore,
    VaultSecretsUnreachable,
    VaultUnreachable,
    parse_transit_signature,
)
from tests.fixtures.openbao import OpenBao
from tests.keys_helpers import MESSAGE, verify_signature

DOCS = Path(__file__).resolve().parents[3] / "docs" / "key-custody.md"


def write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def token_connection(server: OpenBao, directory: Path, token: str, **options: object) -> VaultConnection:
    return VaultConnection(server.url, token_file=write_private(directory / "vault-token", token), **options)  # type: ignore[arg-type]


def assert_no_secret_in(error: HengxinError, *secret_values: str) -> None:
    text = " ".join([str(error), error.detail, error.detail_zh or "", repr(error), repr(error.extra)])
    for value in secret_values:
        assert value not in text


def documented_policy(name: str) -> str:
    """The HCL block of docs/key-custody.md whose first line is ``# policy: <name>``."""
    for block in re.findall(r"```hcl\n(.*?)```", DOCS.read_text(), re.S):
        if block.startswith(f"# policy: {name}\n"):
            return block
    raise AssertionError(f"docs/key-custody.md has no policy {name}")


@pytest.fixture(scope="module")
def store(openbao: OpenBao, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultKeyStore]:
    opened = VaultKeyStore(token_connection(openbao, tmp_path_factory.mktemp("vault"), openbao.root_token))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def keys(store: VaultKeyStore) -> dict[KeyAlgorithm, KeyInfo]:
    return {algorithm: store.generate(f"label {algorithm.value}", algorithm) for algorithm in KeyAlgorithm}


@pytest.fixture
def secret_store(openbao: OpenBao, tmp_path: Path) -> Iterator[VaultSecretStore]:
    opened = VaultSecretStore(token_connection(openbao, tmp_path, openbao.root_token), prefix="hengxin-test/")
    yield opened
    opened.close()


# -- pure helpers --------------------------------------------------------------------------------


def test_transit_signature_prefix_is_stripped_and_version_checked() -> None:
    assert parse_transit_signature("vault:v3:AAEC", 3) == b"\x00\x01\x02"
    with pytest.raises(VaultError, match="version 3"):
        parse_transit_signature("vault:v3:AAEC", 1)
    with pytest.raises(VaultError):
        parse_transit_signature("AAEC")


def test_messages_name_vault_without_credentials() -> None:
    connection = VaultConnection("https://admin:hunter2@vault.example:8200/ui")
    assert connection.safe_url == "https://vault.example:8200"


def test_configuration_refuses_credentials_in_the_url_and_relative_paths() -> None:
    with pytest.raises(pydantic.ValidationError, match="must not contain credentials"):
        KeySettings(vault_url="https://admin:hunter2@vault.example:8200")
    with pytest.raises(pydantic.ValidationError, match="absolute path"):
        SecretSettings(vault_token_file="vault-token")
    absolute = Path("/etc/hengxin/vault-token")
    assert SecretSettings(vault_token_file=str(absolute)).vault_token_file == absolute


# -- Transit signing ------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_every_algorithm_signs_verifiably(
    store: VaultKeyStore, keys: dict[KeyAlgorithm, KeyInfo], algorithm: KeyAlgorithm
) -> None:
    info = keys[algorithm]
    scheme = SignatureScheme(hash_algorithm=algorithm.default_hash)
    verify_signature(info.public_key(), store.sign(info.key_id, MESSAGE), MESSAGE, scheme)
    assert info.algorithm is algorithm and info.backend == "vault"
    assert re.fullmatch(rf"{algorithm.family}-[0-9a-f]{{16}}", info.key_id)


@pytest.mark.parametrize(
    ("algorithm", "scheme"),
    [
        (KeyAlgorithm.RSA_2048, SignatureScheme("sha256", padding="pss")),
        (KeyAlgorithm.RSA_2048, SignatureScheme("sha384", prehashed=True)),
        (KeyAlgorithm.RSA_3072, SignatureScheme("sha512", prehashed=True, padding="pss")),
        (KeyAlgorithm.EC_P256, SignatureScheme("sha256", prehashed=True)),
        (KeyAlgorithm.EC_P384, SignatureScheme("sha512")),
    ],
)
def test_pss_and_prehashed_schemes_verify(
    store: VaultKeyStore, keys: dict[KeyAlgorithm, KeyInfo], algorithm: KeyAlgorithm, scheme: SignatureScheme
) -> None:
    info = keys[algorithm]
    data = hashlib.new(str(scheme.hash_algorithm), MESSAGE).digest() if scheme.prehashed else MESSAGE
    signature = store.sign(info.key_id, data, scheme)
    plain = SignatureScheme(scheme.hash_algorithm, padding=scheme.padding)
    verify_signature(info.public_key(), signature, MESSAGE, plain)


def test_prehashed_digest_of_the_wrong_length_is_refused(
    store: VaultKeyStore, keys: dict[KeyAlgorithm, KeyInfo]
) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        store.sign(keys[KeyAlgorithm.EC_P256].key_id, b"short", SignatureScheme("sha256", prehashed=True))


def test_every_transit_key_is_not_exportable(openbao: OpenBao, keys: dict[KeyAlgorithm, KeyInfo]) -> None:
    for info in keys.values():
        configuration = openbao.request("GET", f"transit/keys/{info.key_id}")["data"]
        assert configuration["exportable"] is False
        assert configuration["allow_plaintext_backup"] is False
        assert configuration["deletion_allowed"] is False


def test_keys_are_listed_and_described_alike_by_a_new_store(
    openbao: OpenBao, tmp_path: Path, keys: dict[KeyAlgorithm, KeyInfo]
) -> None:
    fresh = VaultKeyStore(token_connection(openbao, tmp_path, openbao.root_token))
    listed = {info.key_id: info for info in fresh.list_keys()}
    for info in keys.values():
        again = listed[info.key_id]
        assert (again.public_key_der, again.algorithm, again.created_at) == (
            info.public_key_der,
            info.algorithm,
            info.created_at,
        )
        assert again.label == info.key_id  # Transit keeps no label
    fresh.close()


def test_unknown_or_malformed_key_is_not_found(store: VaultKeyStore) -> None:
    with pytest.raises(KeyNotFound):
        store.sign("ec-0000000000000000", b"x")
    with pytest.raises(KeyNotFound):
        store.info("../sys/seal")


def test_signatures_stay_with_the_reported_key_version_after_rotation(
    openbao: OpenBao, store: VaultKeyStore, tmp_path: Path
) -> None:
    info = store.generate("rotate", "ec-p256")
    openbao.request("POST", f"transit/keys/{info.key_id}/rotate")
    verify_signature(info.public_key(), store.sign(info.key_id, b"m"), b"m", SignatureScheme())
    fresh = VaultKeyStore(token_connection(openbao, tmp_path, openbao.root_token))
    assert fresh.info(info.key_id).public_key_der != info.public_key_der  # a new store sees version 2
    fresh.close()


def test_a_transit_key_that_could_be_exported_is_refused(openbao: OpenBao, store: VaultKeyStore) -> None:
    openbao.request("POST", "transit/keys/leaky", {"type": "ecdsa-p256", "exportable": True})
    with pytest.raises(VaultKeyExportable) as caught:
        store.info("leaky")
    assert caught.value.code == "keys.vault_key_exportable"
    assert "leaky" not in [info.key_id for info in store.list_keys()]


# -- KV secret store -------------------------------------------------------------------------------


def test_kv_secrets_round_trip(secret_store: VaultSecretStore, openbao: OpenBao) -> None:
    secret_store.check()
    assert not secret_store.exists("hsm-pin")
    secret_store.put("hsm-pin", "口令-123456")
    assert secret_store.exists("hsm-pin")
    assert secret_store.get("hsm-pin") == "口令-123456"
    secret_store.put("hsm-pin", "second")
    assert secret_store.get("hsm-pin") == "second"
    stored = openbao.request("GET", "secret/data/hengxin-test/hsm-pin")["data"]["data"]
    assert stored == {"value": "second"}
    assert secret_store.reference("hsm-pin") is None
    generated = secret_store.ensure_random("generated")
    assert secret_store.ensure_random("generated") == generated


def test_missing_secret_and_bad_name_are_reported(secret_store: VaultSecretStore) -> None:
    with pytest.raises(SecretNotFound) as caught:
        secret_store.get("never-written")
    assert caught.value.code == "secrets.not_found"
    with pytest.raises(InvalidInput):
        secret_store.get("../../sys/seal")


# -- authentication ---------------------------------------------------------------------------------


def test_token_from_an_environment_variable(
    openbao: OpenBao, keys: dict[KeyAlgorithm, KeyInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HENGXIN_TEST_VAULT_TOKEN", openbao.root_token)
    store = VaultKeyStore(VaultConnection(openbao.url, token_env="HENGXIN_TEST_VAULT_TOKEN"))
    store.check()
    store.sign(keys[KeyAlgorithm.EC_P256].key_id, b"x")
    store.close()


def test_token_file_readable_by_others_or_missing_source_is_refused(openbao: OpenBao, tmp_path: Path) -> None:
    loose = tmp_path / "token"
    loose.write_text(openbao.root_token)
    loose.chmod(0o644)
    with pytest.raises(InsecureSecretFile):
        VaultKeyStore(VaultConnection(openbao.url, token_file=loose)).check()
    with pytest.raises(ConfigurationError, match="vault_token_file or vault_token_env"):
        VaultKeyStore(VaultConnection(openbao.url)).check()


def test_approle_with_the_documented_policies_runs_both_stores(openbao: OpenBao, tmp_path: Path) -> None:
    openbao.put_policy("hengxin-keys", documented_policy("hengxin-keys"))
    openbao.put_policy("hengxin-secrets", documented_policy("hengxin-secrets"))
    openbao.request("POST", "sys/auth/approle", {"type": "approle"})
    openbao.request(
        "POST",
        "auth/approle/role/hengxin",
        {"token_policies": ["hengxin-keys", "hengxin-secrets"], "token_no_default_policy": True, "token_ttl": "1h"},
    )
    role_id = openbao.request("GET", "auth/approle/role/hengxin/role-id")["data"]["role_id"]
    secret_id = openbao.request("POST", "auth/approle/role/hengxin/secret-id")["data"]["secret_id"]
    connection = VaultConnection(
        openbao.url,
        auth="approle",
        role_id_file=write_private(tmp_path / "role-id", role_id),
        secret_id_file=write_private(tmp_path / "secret-id", secret_id),
    )
    keys = VaultKeyStore(connection)
    keys.check()
    info = keys.generate("approle", "ec-p384")
    verify_signature(info.public_key(), keys.sign(info.key_id, b"m"), b"m", SignatureScheme("sha384"))
    assert info.key_id in [k.key_id for k in keys.list_keys()]
    # The policy does not reach a key's configuration: it cannot be made exportable.
    token = keys.session._hvac().token
    response = openbao.request("GET", "auth/token/lookup-self", token=token)["data"]
    assert sorted(response["policies"]) == ["hengxin-keys", "hengxin-secrets"]
    with pytest.raises(AssertionError, match="403"):
        openbao.request("POST", f"transit/keys/{info.key_id}/config", {"exportable": True}, token=token)
    secrets = VaultSecretStore(connection)
    secrets.put("database-password", "s3cret")
    assert secrets.get("database-password") == "s3cret"
    keys.close()
    secrets.close()


def test_a_renewable_token_is_renewed_before_it_expires(openbao: OpenBao, tmp_path: Path) -> None:
    openbao.put_policy("hengxin-keys", documented_policy("hengxin-keys"))
    token = openbao.create_token(["hengxin-keys"], ttl="4s", renewable=True)
    store = VaultKeyStore(token_connection(openbao, tmp_path, token, renew_before_seconds=300))
    info = store.generate("renew", "ec-p256")  # authenticates: lease 4 s, renewal due with 2 s left
    assert store.session.renewals == 0
    time.sleep(2.2)
    store.sign(info.key_id, b"x")
    assert store.session.renewals == 1
    time.sleep(2.5)  # past the original expiry: only the renewal keeps the token alive
    store.sign(info.key_id, b"y")
    store.close()


def test_an_expired_approle_token_is_replaced_by_a_new_login(openbao: OpenBao, tmp_path: Path) -> None:
    openbao.put_policy("hengxin-keys", documented_policy("hengxin-keys"))
    openbao.request("POST", "sys/auth/approle-short", {"type": "approle"})
    openbao.request(
        "POST",
        "auth/approle-short/role/short",
        {"token_policies": ["hengxin-keys"], "token_ttl": "2s", "token_max_ttl": "2s"},
    )
    role_id = openbao.request("GET", "auth/approle-short/role/short/role-id")["data"]["role_id"]
    secret_id = openbao.request("POST", "auth/approle-short/role/short/secret-id")["data"]["secret_id"]
    store = VaultKeyStore(
        VaultConnection(
            openbao.url,
            auth="approle",
            approle_mount="approle-short",
            role_id_file=write_private(tmp_path / "role-id", role_id),
            secret_id_file=write_private(tmp_path / "secret-id", secret_id),
        )
    )
    info = store.generate("short", "ec-p256")
    assert store.session.logins == 1
    time.sleep(2.2)
    store.sign(info.key_id, b"after expiry")
    assert store.session.logins == 2
    store.close()


def test_a_revoked_token_is_permission_denied_without_the_token_in_the_message(
    openbao: OpenBao, tmp_path: Path, keys: dict[KeyAlgorithm, KeyInfo]
) -> None:
    openbao.put_policy("hengxin-keys", documented_policy("hengxin-keys"))
    token = openbao.create_token(["hengxin-keys"])
    store = VaultKeyStore(token_connection(openbao, tmp_path, token))
    key_id = keys[KeyAlgorithm.EC_P256].key_id
    store.sign(key_id, b"before")
    openbao.revoke_token(token)
    with pytest.raises(VaultPermissionDenied) as caught:
        store.sign(key_id, b"after")
    assert caught.value.code == "keys.vault_permission_denied"
    assert isinstance(caught.value, KeyStoreUnavailable)
    assert_no_secret_in(caught.value, token)
    with pytest.raises(VaultPermissionDenied) as caught:
        store.check()
    assert_no_secret_in(caught.value, token)
    store.close()


def test_an_invalid_token_is_permission_denied_for_both_stores(openbao: OpenBao, tmp_path: Path) -> None:
    bogus = "s.NotARealToken0123456789"
    with pytest.raises(VaultPermissionDenied) as caught:
        VaultKeyStore(token_connection(openbao, tmp_path, bogus)).check()
    assert_no_secret_in(caught.value, bogus)
    with pytest.raises(VaultSecretsPermissionDenied) as caught_secret:
        VaultSecretStore(token_connection(openbao, tmp_path, bogus)).get("anything")
    assert caught_secret.value.code == "secrets.vault_permission_denied"
    assert_no_secret_in(caught_secret.value, bogus)


# -- Vault down or sealed -----------------------------------------------------------------------------


def test_stopped_vault_is_unreachable_for_check_signing_and_secrets(openbao_factory, tmp_path: Path) -> None:
    server = openbao_factory()
    connection = token_connection(server, tmp_path, server.root_token, timeout_seconds=2)
    store = VaultKeyStore(connection)
    secrets = VaultSecretStore(connection)
    info = store.generate("down", "ec-p256")
    secrets.put("pin", "1234")
    server.stop()
    with pytest.raises(VaultUnreachable) as caught:
        store.check()
    assert caught.value.code == "keys.vault_unreachable"
    with pytest.raises(VaultUnreachable) as caught:
        store.sign(info.key_id, b"x")
    assert caught.value.code == "keys.vault_unreachable"
    assert_no_secret_in(caught.value, server.root_token)
    with pytest.raises(VaultSecretsUnreachable) as caught_secret:
        secrets.get("pin")
    assert caught_secret.value.code == "secrets.vault_unreachable"
    assert_no_secret_in(caught_secret.value, server.root_token, "1234")


def test_sealed_vault_is_reported_sealed(openbao_factory, tmp_path: Path) -> None:
    server = openbao_factory()
    connection = token_connection(server, tmp_path, server.root_token)
    store = VaultKeyStore(connection)
    secrets = VaultSecretStore(connection)
    info = store.generate("sealed", "ed25519")
    server.seal()
    with pytest.raises(VaultSealed) as caught:
        store.check()
    assert caught.value.code == "keys.vault_sealed"
    with pytest.raises(VaultSealed):
        store.sign(info.key_id, b"x")
    with pytest.raises(VaultSecretsSealed) as caught_secret:
        secrets.get("pin")
    assert caught_secret.value.code == "secrets.vault_sealed"
    with pytest.raises(VaultSecretsSealed):
        secrets.check()
    assert_no_secret_in(caught_secret.value, server.root_token)


def test_no_hvac_or_requests_exception_escapes(openbao_factory, tmp_path: Path) -> None:
    server = openbao_factory()
    store = VaultKeyStore(token_connection(server, tmp_path, server.root_token, timeout_seconds=2))
    server.stop()
    for operation in (store.check, store.list_keys, lambda: store.generate("x", "rsa-2048")):
        with pytest.raises(HengxinError):
            operation()


def test_unreachable_message_has_no_url_credentials(tmp_path: Path) -> None:
    connection = VaultConnection(
        "http://admin:hunter2@127.0.0.1:9", token_file=write_private(tmp_path / "t", "tok"), timeout_seconds=1
    )
    with pytest.raises(VaultUnreachable) as caught:
        VaultKeyStore(connection).check()
    assert_no_secret_in(caught.value, "hunter2", "admin:", "tok")
    assert "127.0.0.1:9" in caught.value.detail
    assert os.environ.get("VAULT_TOKEN") is None or os.environ["VAULT_TOKEN"] not in caught.value.detail

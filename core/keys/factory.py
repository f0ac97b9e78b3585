"""Open the configured key store and secret store backends."""

from __future__ import annotations

from core.config import Settings
from core.errors import ConfigurationError
from core.keys.base import KeyStore
from core.secrets import SecretStore


def open_keystore(settings: Settings, secrets: SecretStore) -> KeyStore:
    """Open the key store chosen by ``[keys] backend``.

    ``file`` and ``pkcs11`` read their master passphrase or PIN from ``secrets``
    now (SecretNotFound if absent); the PKCS#11 and Vault stores connect on first
    use or on ``check()``.  Raises KeyStoreError leaves, SecretError leaves or
    ConfigurationError.
    """
    keys = settings.keys
    backend = keys.backend
    if backend == "file":
        from core.keys.file import FileKeyStore

        passphrase = secrets.get(keys.passphrase_secret)
        return FileKeyStore(settings.key_directory, passphrase, scrypt_log2_n=keys.scrypt_log2_n)
    if backend == "pkcs11":
        from core.keys.pkcs11 import PKCS11KeyStore

        return PKCS11KeyStore(
            keys.pkcs11_module,
            keys.pkcs11_token_label,
            secrets.get(keys.pkcs11_pin_secret),
            pool_size=keys.pkcs11_session_pool_size,
            session_wait_seconds=keys.pkcs11_session_wait_seconds,
            serialize_calls=keys.pkcs11_serialize_calls,
        )
    if backend == "vault":
        from core.keys.vault import VaultConnection, VaultKeyStore

        return VaultKeyStore(VaultConnection.from_settings(keys), transit_mount=keys.vault_transit_mount)
    raise ConfigurationError(f"key store backend {backend!r} is not available in this version")


def open_secret_store(settings: Settings) -> SecretStore:
    """Open the secret store chosen by ``[secrets] backend`` (no I/O for Vault until first use)."""
    if settings.secrets.backend == "file":
        from core.secrets import FileSecretStore

        return FileSecretStore(settings.secret_directory)
    if settings.secrets.backend == "vault":
        from core.keys.vault import VaultConnection, VaultSecretStore

        return VaultSecretStore(
            VaultConnection.from_settings(settings.secrets),
            mount=settings.secrets.vault_kv_mount,
            prefix=settings.secrets.vault_kv_prefix,
        )
    raise ConfigurationError(f"secret store backend {settings.secrets.backend!r} is not available in this version")

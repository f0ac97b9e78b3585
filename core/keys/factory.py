"""Open the configured key store backend."""

from __future__ import annotations

from core.config import Settings
from core.errors import ConfigurationError
from core.keys.base import KeyStore
from core.secrets import SecretStore


def open_keystore(settings: Settings, secrets: SecretStore) -> KeyStore:
    """Open the key store chosen by ``[keys] backend``; raises KeyStoreError leaves or ConfigurationError."""
    backend = settings.keys.backend
    if backend == "file":
        from core.keys.file import FileKeyStore

        passphrase = secrets.get(settings.keys.passphrase_secret)
        return FileKeyStore(settings.key_directory, passphrase, scrypt_log2_n=settings.keys.scrypt_log2_n)
    raise ConfigurationError(f"key store backend {backend!r} is not available in this version")


def open_secret_store(settings: Settings) -> SecretStore:
    if settings.secrets.backend == "file":
        from core.secrets import FileSecretStore

        return FileSecretStore(settings.secret_directory)
    raise ConfigurationError(f"secret store backend {settings.secrets.backend!r} is not available in this version")

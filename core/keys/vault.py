"""Vault / OpenBao: the Transit key store and the KV version 2 secret store.

This is the one module that imports hvac.  Both stores talk to Vault through
:class:`VaultSession`, which owns the token:

* token auth reads the token from a 0600 file or an environment variable (never
  from the configuration file); AppRole auth logs in with a role_id and a
  secret_id read from 0600 files;
* before every operation a cheap check (a clock comparison) decides whether
  the token needs renewing: a renewable token is renewed when less than
  ``renew_before_seconds`` (at most half its lease) remains; a token that can no
  longer be renewed is replaced by a fresh AppRole login, or for token auth by
  reading the file or variable again (Vault Agent may have written a new one);
* a request refused with "permission denied" is retried once after
  authenticating again, which covers a token revoked or rotated under us.

Transit keys are created with ``exportable=false`` and
``allow_plaintext_backup=false``; the store refuses to use a key where either is
true.  The key id is the Transit key name.  Signatures use the key version whose
public key :meth:`VaultKeyStore.info` reported, so rotating a key in Vault does
not silently change which key signs for an issued certificate.  Transit keeps
no label: a key's label is its name.

Errors are ours, never hvac's or requests': Vault unreachable, sealed, or
refusing permission are ``keys.vault_unreachable``, ``keys.vault_sealed``,
``keys.vault_permission_denied`` for the key store and ``secrets.vault_*`` for
the secret store.  Messages name Vault by scheme, host and port only and never
carry a token, a credential or a secret value.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.clock import parse_utc
from core.errors import (
    Category,
    ConfigurationError,
    HengxinError,
    KeyNotFound,
    KeyStoreError,
    KeyStoreUnavailable,
    SecretError,
    SecretNotFound,
    UnsupportedAlgorithm,
)
from core.keys.base import KeyAlgorithm, KeyInfo, KeyStore, PublicKey, SignatureScheme, public_key_der
from core.secrets import SecretStore, check_secret_name, read_private_file

if TYPE_CHECKING:
    from core.config import KeySettings, SecretSettings

T = TypeVar("T")

# Transit key names Hengxin uses or accepts: no slashes or dots that could move the request path.
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_SIGNATURE = re.compile(r"^vault:v(\d+):([A-Za-z0-9+/=]+)$")

_TRANSIT_TYPES = {
    KeyAlgorithm.EC_P256: "ecdsa-p256",
    KeyAlgorithm.EC_P384: "ecdsa-p384",
    KeyAlgorithm.RSA_2048: "rsa-2048",
    KeyAlgorithm.RSA_3072: "rsa-3072",
    KeyAlgorithm.RSA_4096: "rsa-4096",
    KeyAlgorithm.ED25519: "ed25519",
}
_ALGORITHMS = {value: key for key, value in _TRANSIT_TYPES.items()}
_HASH_NAMES = {"sha256": "sha2-256", "sha384": "sha2-384", "sha512": "sha2-512"}


# ---------------------------------------------------------------------------
# Errors


class VaultUnreachable(KeyStoreUnavailable):
    code = "keys.vault_unreachable"
    title_en = "Vault cannot be reached"
    title_zh = "无法连接 Vault"


class VaultSealed(KeyStoreUnavailable):
    code = "keys.vault_sealed"
    title_en = "Vault is sealed"
    title_zh = "Vault 已封存"


class VaultPermissionDenied(KeyStoreUnavailable):
    code = "keys.vault_permission_denied"
    title_en = "Vault refused permission (token invalid, expired or lacking policy)"
    title_zh = "Vault 拒绝访问（令牌无效、过期或策略不足）"


class VaultError(KeyStoreError):
    """Vault answered in a way the key store cannot use."""

    code = "keys.vault_error"
    title_en = "Vault error"
    title_zh = "Vault 错误"


class VaultKeyExportable(KeyStoreError):
    """A Transit key that could leave Vault (exportable or with plaintext backup) is not used."""

    code = "keys.vault_key_exportable"
    category = Category.CONFLICT
    title_en = "The Vault key can be exported"
    title_zh = "Vault 密钥可被导出"


class VaultSecretsUnreachable(SecretError):
    code = "secrets.vault_unreachable"
    category = Category.UNAVAILABLE
    title_en = "Vault cannot be reached"
    title_zh = "无法连接 Vault"


class VaultSecretsSealed(SecretError):
    code = "secrets.vault_sealed"
    category = Category.UNAVAILABLE
    title_en = "Vault is sealed"
    title_zh = "Vault 已封存"


class VaultSecretsPermissionDenied(SecretError):
    code = "secrets.vault_permission_denied"
    category = Category.UNAVAILABLE
    title_en = "Vault refused permission (token invalid, expired or lacking policy)"
    title_zh = "Vault 拒绝访问（令牌无效、过期或策略不足）"


class VaultSecretsError(SecretError):
    code = "secrets.vault_error"
    title_en = "Vault error"
    title_zh = "Vault 错误"


@dataclasses.dataclass(frozen=True)
class _ErrorFamily:
    unreachable: type[HengxinError]
    sealed: type[HengxinError]
    denied: type[HengxinError]
    other: type[HengxinError]


_KEY_ERRORS = _ErrorFamily(VaultUnreachable, VaultSealed, VaultPermissionDenied, VaultError)
_SECRET_ERRORS = _ErrorFamily(
    VaultSecretsUnreachable, VaultSecretsSealed, VaultSecretsPermissionDenied, VaultSecretsError
)


class _Missing(Exception):
    """Vault answered 404; the caller turns it into its own not-found error."""


# ---------------------------------------------------------------------------
# Connection settings


@dataclasses.dataclass(frozen=True)
class VaultConnection:
    """Where Vault is and how to authenticate; no secret values, only where to read them."""

    url: str
    auth: Literal["token", "approle"] = "token"
    token_file: Path | None = None
    token_env: str = ""
    approle_mount: str = "approle"
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    ca_file: Path | None = None
    timeout_seconds: float = 10.0
    renew_before_seconds: float = 300.0

    @classmethod
    def from_settings(cls, section: KeySettings | SecretSettings) -> VaultConnection:
        """Read the ``vault_*`` options of ``[keys]`` or ``[secrets]``."""
        return cls(
            url=section.vault_url,
            auth=section.vault_auth,
            token_file=section.vault_token_file,
            token_env=section.vault_token_env,
            approle_mount=section.vault_approle_mount,
            role_id_file=section.vault_role_id_file,
            secret_id_file=section.vault_secret_id_file,
            ca_file=section.vault_ca_file,
            timeout_seconds=section.vault_timeout_seconds,
            renew_before_seconds=section.vault_renew_before_seconds,
        )

    @property
    def safe_url(self) -> str:
        """The URL reduced to scheme, host and port, fit for messages."""
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"


# ---------------------------------------------------------------------------
# The session: token, renewal, error translation


class VaultSession:
    """One hvac client and its token, shared by the operations of one store.  Thread-safe."""

    def __init__(self, connection: VaultConnection, errors: _ErrorFamily) -> None:
        self.connection = connection
        self._errors = errors
        self._lock = threading.RLock()
        self._client: Any = None
        self._authenticated = False
        self._expires_at: float | None = None  # time.monotonic(); None: the token does not expire
        self._lease = 0.0
        self._renewable = False
        self.renewals = 0
        self.logins = 0

    # -- hvac client ---------------------------------------------------------------------

    def _hvac(self) -> Any:
        if self._client is None:
            verify: bool | str = str(self.connection.ca_file) if self.connection.ca_file else True
            # token="" keeps hvac from picking up VAULT_TOKEN or ~/.vault-token on its own.
            self._client = hvac.Client(
                url=self.connection.url, token="", verify=verify, timeout=self.connection.timeout_seconds
            )
        return self._client

    def close(self) -> None:
        """Close the HTTP connections (the token is not revoked: it may be shared with Vault Agent)."""
        with self._lock:
            if self._client is not None:
                self._client.adapter.close()
                self._client = None
            self._authenticated = False

    # -- error translation -----------------------------------------------------------------

    def _raw(self, what: str, operation: Callable[[], T]) -> T:
        """Run one hvac call, turning every hvac and requests error into ours (404 into _Missing)."""
        errors, url = self._errors, self.connection.safe_url
        try:
            return operation()
        except hvac.exceptions.InvalidPath as e:
            raise _Missing() from e
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as e:
            raise errors.denied(
                f"Vault at {url} refused {what}: permission denied (token invalid, expired or revoked, "
                "or its policy lacks the capability)",
                detail_zh=f"Vault（{url}）拒绝了请求：权限不足（令牌无效、过期、已吊销或策略缺少权限）",
            ) from e
        except hvac.exceptions.VaultDown as e:
            if "sealed" in str(e).lower() or self._sealed():
                raise errors.sealed(
                    f"Vault at {url} is sealed; unseal it to continue", detail_zh=f"Vault（{url}）已封存，需解封"
                ) from e
            raise errors.unreachable(f"Vault at {url} is not ready ({type(e).__name__}) while {what}") from e
        except requests.exceptions.RequestException as e:
            raise errors.unreachable(
                f"Vault at {url} cannot be reached while {what} ({type(e).__name__})",
                detail_zh=f"无法连接 Vault（{url}）",
            ) from e
        except hvac.exceptions.VaultError as e:
            raise errors.other(f"Vault at {url} refused {what} ({type(e).__name__})") from e

    def _sealed(self) -> bool:
        try:
            return bool(self._hvac().sys.read_seal_status().get("sealed"))
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException, ValueError):
            return False

    # -- authentication ----------------------------------------------------------------------

    def _read_credential(self, path: Path | None, option: str) -> str:
        if path is None:
            raise ConfigurationError(f"Vault {self.connection.auth} auth needs {option}")
        try:
            value = read_private_file(path).decode("utf-8").strip()
        except FileNotFoundError:
            raise ConfigurationError(f"the file named by {option} does not exist") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"the file named by {option} is not UTF-8 text") from None
        if not value:
            raise ConfigurationError(f"the file named by {option} is empty")
        return value

    def _read_token(self) -> str:
        connection = self.connection
        if connection.token_file is not None:
            return self._read_credential(connection.token_file, "vault_token_file")
        if connection.token_env:
            value = os.environ.get(connection.token_env, "").strip()
            if not value:
                raise ConfigurationError(f"environment variable {connection.token_env} (vault_token_env) is not set")
            return value
        raise ConfigurationError("Vault token auth needs vault_token_file or vault_token_env")

    def _authenticate(self) -> None:
        """Get a token (AppRole login, or read it) and learn its lifetime.  Caller holds the lock."""
        client = self._hvac()
        if self.connection.auth == "approle":
            role_id = self._read_credential(self.connection.role_id_file, "vault_role_id_file")
            secret_id = self._read_credential(self.connection.secret_id_file, "vault_secret_id_file")
            try:
                response = self._raw(
                    "the AppRole login",
                    lambda: client.auth.approle.login(
                        role_id=role_id, secret_id=secret_id, mount_point=self.connection.approle_mount
                    ),
                )
            except _Missing:
                raise self._errors.denied(
                    f"Vault at {self.connection.safe_url} has no AppRole method at {self.connection.approle_mount}/"
                ) from None
            auth = response.get("auth") or {}
            self._set_lifetime(float(auth.get("lease_duration") or 0), bool(auth.get("renewable")))
            self.logins += 1
        else:
            client.token = self._read_token()
            try:
                data = self._raw("the token lookup", lambda: client.auth.token.lookup_self())["data"]
            except _Missing:
                raise self._errors.denied(f"Vault at {self.connection.safe_url} does not know the token") from None
            self._set_lifetime(float(data.get("ttl") or 0), bool(data.get("renewable")))
        self._authenticated = True

    def _set_lifetime(self, lease: float, renewable: bool) -> None:
        self._lease = lease
        self._renewable = renewable
        self._expires_at = time.monotonic() + lease if lease > 0 else None

    def _margin(self) -> float:
        return min(self.connection.renew_before_seconds, self._lease / 2)

    def ensure_token(self) -> None:
        """Make sure a usable token is set: authenticate, renew or log in again as needed.

        Cheap when nothing is due (a clock comparison).  Raises the family's
        unreachable, sealed or permission-denied error, or ConfigurationError.
        """
        expires_at = self._expires_at
        if self._authenticated and (expires_at is None or expires_at - time.monotonic() > self._margin()):
            return
        with self._lock:
            if not self._authenticated:
                self._authenticate()
                return
            if self._expires_at is None:
                return
            remaining = self._expires_at - time.monotonic()
            if remaining > self._margin():
                return
            if self._renewable and remaining > 0:
                try:
                    response = self._raw("the token renewal", lambda: self._hvac().auth.token.renew_self())
                except (_Missing, self._errors.denied):
                    response = None
                if response is not None:
                    auth = response.get("auth") or {}
                    lease = float(auth.get("lease_duration") or 0)
                    self.renewals += 1
                    self._set_lifetime(lease, bool(auth.get("renewable")))
                    if lease == 0 or lease > self._margin():
                        return
                    # The token is at its maximum TTL: renewing again would not help.
                    self._renewable = False
            if self.connection.auth == "approle" or remaining <= 0:
                self._authenticate()

    def call(self, what: str, operation: Callable[[Any], T]) -> T:
        """Run ``operation(client)`` with a valid token; re-authenticate once if Vault denies permission.

        Raises the family's errors, or _Missing for a 404.
        """
        self.ensure_token()
        client = self._hvac()
        try:
            return self._raw(what, lambda: operation(client))
        except self._errors.denied:
            if not self._reauthenticate():
                raise
        return self._raw(what, lambda: operation(client))

    def _reauthenticate(self) -> bool:
        """Authenticate again after a denial; True if a different token is now in use."""
        with self._lock:
            client = self._hvac()
            before = client.token
            try:
                self._authenticate()
            except HengxinError:
                self._authenticated = False
                return False
            return bool(client.token) and client.token != before

    def check(self) -> None:
        """Raise unless Vault is reachable, unsealed, and accepts the token."""
        status = self._raw("reading the seal status", lambda: self._hvac().sys.read_seal_status())
        if status.get("sealed"):
            raise self._errors.sealed(
                f"Vault at {self.connection.safe_url} is sealed; unseal it to continue",
                detail_zh=f"Vault（{self.connection.safe_url}）已封存，需解封",
            )
        try:
            self.call("the token lookup", lambda client: client.auth.token.lookup_self())
        except _Missing:
            raise self._errors.denied(f"Vault at {self.connection.safe_url} does not know the token") from None


# ---------------------------------------------------------------------------
# Transit key store


def _check_key_name(key_id: str) -> str:
    if not _KEY_NAME.match(key_id):
        raise KeyNotFound(f"invalid key id {key_id!r}")
    return key_id


def _public_key_of(key_type: str, text: str) -> PublicKey:
    if key_type == "ed25519":
        # Transit gives Ed25519 public keys as base64 of the 32 raw bytes, the others as PEM.
        return ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    key = serialization.load_pem_public_key(text.encode("ascii"))
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise VaultError(f"Vault returned an unexpected {type(key).__name__} for a {key_type} key")
    return key


def parse_transit_signature(text: str, version: int | None = None) -> bytes:
    """The signature bytes of a Transit ``vault:v<N>:<base64>`` string; checks N when given."""
    match = _SIGNATURE.match(text)
    if match is None:
        raise VaultError("Vault returned a signature in an unknown format")
    if version is not None and int(match.group(1)) != version:
        raise VaultError(f"Vault signed with key version {match.group(1)}, not the requested {version}")
    try:
        return base64.b64decode(match.group(2), validate=True)
    except binascii.Error as e:
        raise VaultError("Vault returned a signature that is not base64") from e


class VaultKeyStore(KeyStore):
    """Keys in Vault's (or OpenBao's) Transit engine; they never leave it.

    Construction does no I/O.  Errors: VaultUnreachable, VaultSealed,
    VaultPermissionDenied (all KeyStoreUnavailable), VaultError,
    VaultKeyExportable, KeyNotFound, UnsupportedAlgorithm, ConfigurationError
    (missing token source).  No hvac exception leaves this module.
    """

    backend = "vault"

    def __init__(self, connection: VaultConnection, *, transit_mount: str = "transit") -> None:
        super().__init__()
        self.session = VaultSession(connection, _KEY_ERRORS)
        self.transit_mount = transit_mount.strip("/")
        self._versions: dict[str, int] = {}

    def _read_key(self, key_id: str) -> dict[str, Any]:
        name = _check_key_name(key_id)
        try:
            response = self.session.call(
                f"reading key {key_id!r}",
                lambda client: client.secrets.transit.read_key(name=name, mount_point=self.transit_mount),
            )
        except _Missing:
            raise KeyNotFound(
                f"key {key_id!r} is not in Vault Transit", detail_zh=f"Vault 中没有密钥 {key_id!r}"
            ) from None
        return dict(response["data"])

    def _info_from(self, key_id: str, data: dict[str, Any]) -> KeyInfo:
        key_type = str(data.get("type"))
        algorithm = _ALGORITHMS.get(key_type)
        if algorithm is None:
            raise UnsupportedAlgorithm(f"Transit key {key_id!r} has type {key_type}, which cannot sign for Hengxin")
        if data.get("exportable") or data.get("allow_plaintext_backup"):
            raise VaultKeyExportable(
                f"Transit key {key_id!r} is exportable or allows plaintext backup; Hengxin does not use such keys",
                detail_zh=f"Vault 密钥 {key_id!r} 可导出或允许明文备份，平台不使用此类密钥",
            )
        try:
            version = int(data["latest_version"])
            entry = data["keys"][str(version)]
            public_key = _public_key_of(key_type, entry["public_key"])
            created_at = parse_utc(entry["creation_time"])
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise VaultError(f"Vault returned an unexpected description of key {key_id!r}") from e
        if KeyAlgorithm.of_public_key(public_key) is not algorithm:
            raise VaultError(f"the public key of {key_id!r} does not match its type {key_type}")
        with self._lock:
            self._versions[key_id] = version
        return KeyInfo(
            key_id=key_id,
            label=key_id,
            algorithm=algorithm,
            backend=self.backend,
            created_at=created_at,
            public_key_der=public_key_der(public_key),
        )

    # -- KeyStore primitives -----------------------------------------------------------

    def _generate(self, label: str, algorithm: KeyAlgorithm) -> KeyInfo:
        key_id = f"{algorithm.family}-{secrets.token_hex(8)}"
        try:
            self.session.call(
                f"creating a {algorithm.value} key",
                lambda client: client.secrets.transit.create_key(
                    name=key_id,
                    key_type=_TRANSIT_TYPES[algorithm],
                    exportable=False,
                    allow_plaintext_backup=False,
                    mount_point=self.transit_mount,
                ),
            )
        except _Missing:
            raise VaultError(f"no Transit engine is mounted at {self.transit_mount}/") from None
        return self._info_from(key_id, self._read_key(key_id))

    def _load_info(self, key_id: str) -> KeyInfo:
        return self._info_from(key_id, self._read_key(key_id))

    def _list(self) -> list[KeyInfo]:
        try:
            response = self.session.call(
                "listing keys", lambda client: client.secrets.transit.list_keys(mount_point=self.transit_mount)
            )
        except _Missing:
            return []  # Vault answers 404 when there are no keys yet
        found = []
        for name in sorted(response["data"].get("keys") or []):
            if not _KEY_NAME.match(name):
                continue
            try:
                found.append(self._info_from(name, self._read_key(name)))
            except (UnsupportedAlgorithm, VaultKeyExportable, KeyNotFound):
                continue  # encryption keys, keys that may leave Vault, keys deleted meanwhile
        return found

    def _sign(self, info: KeyInfo, data: bytes, scheme: SignatureScheme) -> bytes:
        with self._lock:
            version = self._versions.get(info.key_id)
        arguments: dict[str, Any] = {
            "name": _check_key_name(info.key_id),
            "hash_input": base64.b64encode(data).decode("ascii"),
            "key_version": version,
            "mount_point": self.transit_mount,
        }
        family = info.algorithm.family
        if family != "ed25519":
            arguments["hash_algorithm"] = _HASH_NAMES[str(scheme.hash_algorithm)]
            arguments["prehashed"] = scheme.prehashed
            if scheme.prehashed and len(data) != scheme.hash().digest_size:
                raise UnsupportedAlgorithm(
                    f"a prehashed {scheme.hash_algorithm} digest is {scheme.hash().digest_size} bytes, not {len(data)}"
                )
        if family == "ec":
            arguments["marshaling_algorithm"] = "asn1"
        elif family == "rsa":
            if scheme.padding == "pss":
                arguments["signature_algorithm"] = "pss"
                arguments["salt_length"] = "hash"
            else:
                arguments["signature_algorithm"] = "pkcs1v15"
        try:
            response = self.session.call(
                f"signing with key {info.key_id!r}", lambda client: client.secrets.transit.sign_data(**arguments)
            )
        except _Missing:
            raise KeyNotFound(f"key {info.key_id!r} is not in Vault Transit") from None
        try:
            text = response["data"]["signature"]
        except (KeyError, TypeError) as e:
            raise VaultError("Vault returned no signature") from e
        return parse_transit_signature(text, version)

    # -- operations ----------------------------------------------------------------------

    def check(self) -> None:
        """Raise unless Vault is reachable, unsealed and accepts the token (VaultUnreachable, VaultSealed,
        VaultPermissionDenied)."""
        self.session.check()

    def close(self) -> None:
        self.session.close()

    def __repr__(self) -> str:
        return f"<VaultKeyStore {self.session.connection.safe_url} transit={self.transit_mount!r}>"


# ---------------------------------------------------------------------------
# KV v2 secret store


class VaultSecretStore(SecretStore):
    """Named secrets in a KV version 2 mount, each at ``<prefix><name>`` with one field ``value``.

    Errors: SecretNotFound, VaultSecretsUnreachable, VaultSecretsSealed,
    VaultSecretsPermissionDenied, VaultSecretsError, InvalidInput (bad name).
    """

    def __init__(self, connection: VaultConnection, *, mount: str = "secret", prefix: str = "hengxin/") -> None:
        self.session = VaultSession(connection, _SECRET_ERRORS)
        self.mount = mount.strip("/")
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""

    def _path(self, name: str) -> str:
        return self.prefix + check_secret_name(name)

    def get(self, name: str) -> str:
        path = self._path(name)
        try:
            response = self.session.call(
                f"reading secret {name!r}",
                lambda client: client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.mount, raise_on_deleted_version=True
                ),
            )
        except _Missing:
            raise SecretNotFound(
                f"secret {name!r} is not in the secret store", detail_zh=f"机密 {name!r} 不存在"
            ) from None
        try:
            value = response["data"]["data"]["value"]
        except (KeyError, TypeError):
            raise VaultSecretsError(f"secret {name!r} in Vault has no 'value' field") from None
        if not isinstance(value, str):
            raise VaultSecretsError(f"secret {name!r} in Vault is not text")
        return value

    def put(self, name: str, value: str) -> None:
        path = self._path(name)
        try:
            self.session.call(
                f"writing secret {name!r}",
                lambda client: client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret={"value": value}, mount_point=self.mount
                ),
            )
        except _Missing:
            raise VaultSecretsError(f"no KV version 2 engine is mounted at {self.mount}/") from None

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except SecretNotFound:
            return False
        return True

    def reference(self, name: str) -> Path | None:
        """None: Vault secrets are never written to files."""
        return None

    def check(self) -> None:
        """Raise unless Vault is reachable, unsealed and accepts the token."""
        self.session.check()

    def close(self) -> None:
        self.session.close()

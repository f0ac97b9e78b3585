"""The embedded key store: one sealed file per key.

File layout (``<directory>/<key_id>.key``, mode 0600)::

    b"HXKEY" 0x01 | header length (4 bytes, big endian) | header | nonce (12) | AES-256-GCM(PKCS#8 DER)

The header is canonical JSON (key id, label, algorithm, creation time, public
key) and is authenticated as associated data, so it cannot be swapped between
files.  The key-encryption key is derived once per store instance with scrypt
from the master passphrase and a per-store salt kept in ``keystore.json``,
which also holds a check value so a wrong passphrase is reported as such
(cryptography's own PKCS#8 encryption uses PBKDF2 and cannot do scrypt).

Decrypted keys are cached in memory after first use; a signature never re-reads
a file.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from core.clock import isoformat_utc, parse_utc, utc_now
from core.errors import KeyNotFound, KeyStoreError, KeyStoreUnavailable, WrongPassphrase
from core.jcs import canonicalize
from core.keys.adapters import sign_with_cryptography_key
from core.keys.base import KeyAlgorithm, KeyInfo, KeyStore, SignatureScheme, public_key_der
from core.secrets import read_private_file, write_private_file

MAGIC = b"HXKEY\x01"
META_FILE = "keystore.json"
_CHECK_PLAINTEXT = b"hengxin key store check v1"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def generate_private_key(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm is KeyAlgorithm.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm is KeyAlgorithm.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm.family == "rsa":
        return rsa.generate_private_key(65537, algorithm.rsa_bits)
    if algorithm is KeyAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyStoreError(f"the file backend cannot generate {algorithm.value}")


class FileKeyStore(KeyStore):
    backend = "file"

    def __init__(self, directory: Path, passphrase: str, *, scrypt_log2_n: int = 17) -> None:
        super().__init__()
        self.directory = directory
        self._keys: dict[str, PrivateKey] = {}
        self._key_lock = threading.Lock()
        self._aead = AESGCM(self._derive_kek(passphrase, scrypt_log2_n))

    # -- key-encryption key -------------------------------------------------------------

    def _derive_kek(self, passphrase: str, log2_n: int) -> bytes:
        if not passphrase:
            raise WrongPassphrase("the master passphrase is empty")
        meta_path = self.directory / META_FILE
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
                salt = base64.b64decode(meta["salt"])
                n_log2, r, p = int(meta["log2_n"]), int(meta["r"]), int(meta["p"])
                check = base64.b64decode(meta["check"])
            except (ValueError, KeyError, TypeError) as e:
                raise KeyStoreError(f"{META_FILE} in the key directory is damaged") from e
            kek = self._scrypt(passphrase, salt, n_log2, r, p)
            try:
                AESGCM(kek).decrypt(check[:12], check[12:], b"hengxin-keystore")
            except InvalidTag:
                raise WrongPassphrase(
                    "the master passphrase does not open the key store",
                    detail_zh="主口令无法打开密钥库",
                ) from None
            return kek
        salt = secrets.token_bytes(16)
        kek = self._scrypt(passphrase, salt, log2_n, 8, 1)
        nonce = secrets.token_bytes(12)
        check = nonce + AESGCM(kek).encrypt(nonce, _CHECK_PLAINTEXT, b"hengxin-keystore")
        meta = {
            "format": 1,
            "kdf": "scrypt",
            "log2_n": log2_n,
            "r": 8,
            "p": 1,
            "salt": base64.b64encode(salt).decode(),
            "check": base64.b64encode(check).decode(),
            "cipher": "AES-256-GCM",
        }
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(meta_path, json.dumps(meta, indent=2).encode())
        return kek

    @staticmethod
    def _scrypt(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
        # 2^17 x 8 x 128 bytes = 128 MiB of memory; the default limit is lower.
        kdf = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p)
        return kdf.derive(passphrase.encode("utf-8"))

    # -- files ----------------------------------------------------------------------------

    def _path(self, key_id: str) -> Path:
        if not key_id or "/" in key_id or key_id.startswith("."):
            raise KeyNotFound(f"invalid key id {key_id!r}")
        return self.directory / f"{key_id}.key"

    def _read(self, key_id: str) -> tuple[dict[str, Any], bytes, bytes]:
        path = self._path(key_id)
        try:
            blob = read_private_file(path)
        except FileNotFoundError:
            raise KeyNotFound(f"key {key_id!r} is not in the key store", detail_zh=f"密钥 {key_id!r} 不存在") from None
        except OSError as e:
            raise KeyStoreUnavailable(f"key {key_id!r} cannot be read") from e
        return self._parse(blob, key_id)

    @staticmethod
    def _parse(blob: bytes, key_id: str) -> tuple[dict[str, Any], bytes, bytes]:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
            raise KeyStoreError(f"key file for {key_id!r} has an unknown format")
        (length,) = struct.unpack(">I", blob[len(MAGIC) : len(MAGIC) + 4])
        start = len(MAGIC) + 4
        header_bytes = blob[start : start + length]
        sealed = blob[start + length :]
        try:
            header = json.loads(header_bytes)
        except ValueError as e:
            raise KeyStoreError(f"key file for {key_id!r} has a damaged header") from e
        aad = blob[: start + length]
        return header, aad, sealed

    @staticmethod
    def _info_from_header(header: dict[str, Any]) -> KeyInfo:
        return KeyInfo(
            key_id=header["key_id"],
            label=header["label"],
            algorithm=KeyAlgorithm(header["algorithm"]),
            backend="file",
            created_at=parse_utc(header["created_at"]),
            public_key_der=base64.b64decode(header["public_key"]),
        )

    # -- KeyStore primitives -----------------------------------------------------------

    def _generate(self, label: str, algorithm: KeyAlgorithm) -> KeyInfo:
        key = generate_private_key(algorithm)
        key_id = f"{algorithm.family}-{secrets.token_hex(8)}"
        header = {
            "format": 1,
            "key_id": key_id,
            "label": label,
            "algorithm": algorithm.value,
            "created_at": isoformat_utc(utc_now()),
            "public_key": base64.b64encode(public_key_der(key.public_key())).decode(),
        }
        header_bytes = canonicalize(header)
        aad = MAGIC + struct.pack(">I", len(header_bytes)) + header_bytes
        plaintext = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = secrets.token_bytes(12)
        write_private_file(self._path(key_id), aad + nonce + self._aead.encrypt(nonce, plaintext, aad))
        with self._key_lock:
            self._keys[key_id] = key
        return self._info_from_header(header)

    def _load_info(self, key_id: str) -> KeyInfo:
        header, _aad, _sealed = self._read(key_id)
        if header.get("key_id") != key_id:
            raise KeyStoreError(f"key file for {key_id!r} names another key")
        return self._info_from_header(header)

    def _list(self) -> list[KeyInfo]:
        if not self.directory.exists():
            return []
        found = []
        for path in sorted(self.directory.glob("*.key")):
            header, _aad, _sealed = self._read(path.stem)
            found.append(self._info_from_header(header))
        return found

    def _private(self, key_id: str) -> PrivateKey:
        with self._key_lock:
            key = self._keys.get(key_id)
        if key is not None:
            return key
        header, aad, sealed = self._read(key_id)
        try:
            plaintext = self._aead.decrypt(sealed[:12], sealed[12:], aad)
        except InvalidTag:
            raise KeyStoreError(
                f"key {key_id!r} does not decrypt: the file was altered or sealed under another passphrase"
            ) from None
        loaded = serialization.load_der_private_key(plaintext, password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            raise KeyStoreError(f"key {key_id!r} has an unsupported type")
        with self._key_lock:
            self._keys[key_id] = loaded
        return loaded

    def _sign(self, info: KeyInfo, data: bytes, scheme: SignatureScheme) -> bytes:
        return sign_with_cryptography_key(self._private(info.key_id), data, scheme)

    def check(self) -> None:
        if not self.directory.is_dir():
            raise KeyStoreUnavailable("the key directory is missing")

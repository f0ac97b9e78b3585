"""The KeyStore contract: every signature in Hengxin goes through it.

A backend (file, PKCS#11, Vault) implements four primitives: generate, load
public information, list, and sign.  Everything else — the ``cryptography``
private-key adapters that certificate, CRL, OCSP and JWT code pass to their
builders, and the pyHanko signer — is built here on top of ``sign()``, so a new
backend changes no domain code.

Private key objects never leave ``core/keys``.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import enum
import hashlib
import threading
from typing import ClassVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.errors import UnsupportedAlgorithm

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class KeyAlgorithm(enum.StrEnum):
    """Key types.  The set is open: SM2 is planned (GB/T 32918)."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"

    @classmethod
    def parse(cls, value: str) -> KeyAlgorithm:
        try:
            return cls(value.lower())
        except ValueError:
            allowed = ", ".join(a.value for a in cls)
            raise UnsupportedAlgorithm(f"unknown key algorithm {value!r}; choose one of {allowed}") from None

    @property
    def family(self) -> str:
        return self.value.split("-")[0]

    @property
    def rsa_bits(self) -> int:
        return int(self.value.split("-")[1])

    @property
    def default_hash(self) -> str | None:
        """The hash a signature by this key uses unless told otherwise."""
        if self is KeyAlgorithm.EC_P384:
            return "sha384"
        if self is KeyAlgorithm.ED25519:
            return None
        return "sha256"

    @classmethod
    def of_public_key(cls, key: PublicKey) -> KeyAlgorithm:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if isinstance(key.curve, ec.SECP256R1):
                return cls.EC_P256
            if isinstance(key.curve, ec.SECP384R1):
                return cls.EC_P384
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size in (2048, 3072, 4096):
                return cls(f"rsa-{key.key_size}")
        elif isinstance(key, ed25519.Ed25519PublicKey):
            return cls.ED25519
        raise UnsupportedAlgorithm(f"unsupported public key {type(key).__name__}")


HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclasses.dataclass(frozen=True)
class SignatureScheme:
    """How to sign: the hash, whether ``data`` is already its digest, and the RSA padding."""

    hash_algorithm: str | None = "sha256"
    prehashed: bool = False
    padding: str | None = None  # RSA only: "pkcs1v15" (default) or "pss"

    def hash(self) -> hashes.HashAlgorithm:
        if self.hash_algorithm not in HASHES:
            raise UnsupportedAlgorithm(f"unsupported hash algorithm {self.hash_algorithm!r}")
        return HASHES[self.hash_algorithm]()


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    key_id: str
    label: str
    algorithm: KeyAlgorithm
    backend: str
    created_at: dt.datetime
    public_key_der: bytes  # SubjectPublicKeyInfo

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the SubjectPublicKeyInfo, hex."""
        return hashlib.sha256(self.public_key_der).hexdigest()

    def public_key(self) -> PublicKey:
        key = serialization.load_der_public_key(self.public_key_der)
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey)
        return key


def public_key_der(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class KeyStore(abc.ABC):
    """Generate keys, sign with them, and hand out signing adapters.

    Subclasses implement the underscored primitives.  All methods are safe to
    call from several threads.  Errors are :class:`core.errors.KeyStoreError`
    leaves (``KeyNotFound``, ``WrongPassphrase``, ``KeyStoreUnavailable`` ...).
    """

    backend: ClassVar[str]

    def __init__(self) -> None:
        self._adapters: dict[str, object] = {}
        self._info_cache: dict[str, KeyInfo] = {}
        self._lock = threading.Lock()

    # -- primitives for backends ------------------------------------------------------

    @abc.abstractmethod
    def _generate(self, label: str, algorithm: KeyAlgorithm) -> KeyInfo: ...

    @abc.abstractmethod
    def _load_info(self, key_id: str) -> KeyInfo:
        """Public information of ``key_id``; raises KeyNotFound."""

    @abc.abstractmethod
    def _list(self) -> list[KeyInfo]: ...

    @abc.abstractmethod
    def _sign(self, info: KeyInfo, data: bytes, scheme: SignatureScheme) -> bytes:
        """Sign; for EC return the DER ECDSA-Sig-Value, for RSA and Ed25519 the raw signature."""

    def check(self) -> None:
        """Raise a KeyStoreError unless the store can sign now (used by /readyz)."""

    def close(self) -> None:
        """Release sessions and connections."""

    # -- public API -------------------------------------------------------------------

    def generate(self, label: str, algorithm: KeyAlgorithm | str) -> KeyInfo:
        """Create a new key pair inside the store; the private half never leaves it."""
        info = self._generate(label, KeyAlgorithm.parse(str(algorithm)))
        with self._lock:
            self._info_cache[info.key_id] = info
        return info

    def info(self, key_id: str) -> KeyInfo:
        with self._lock:
            cached = self._info_cache.get(key_id)
        if cached is not None:
            return cached
        info = self._load_info(key_id)
        with self._lock:
            self._info_cache[key_id] = info
        return info

    def list_keys(self) -> list[KeyInfo]:
        return self._list()

    def public_key(self, key_id: str) -> PublicKey:
        return self.info(key_id).public_key()

    def sign(self, key_id: str, data: bytes, scheme: SignatureScheme | None = None) -> bytes:
        """Sign ``data`` (or, with ``scheme.prehashed``, the digest ``data``) with ``key_id``.

        Without a scheme the key's default hash is used (RSA: PKCS#1 v1.5).
        Raises UnsupportedAlgorithm when the scheme does not fit the key.
        """
        info = self.info(key_id)
        if scheme is None:
            scheme = SignatureScheme(hash_algorithm=info.algorithm.default_hash)
        self._check_scheme(info, scheme)
        return self._sign(info, data, scheme)

    def private_key(self, key_id: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
        """A ``cryptography`` private-key object whose ``sign()`` goes through this store.

        Pass it to ``CertificateBuilder.sign()``, CRL and OCSP builders, or pyjwt.
        Its private numbers and serialisation are unavailable by design.
        """
        from core.keys.adapters import make_adapter

        with self._lock:
            adapter = self._adapters.get(key_id)
        if adapter is None:
            adapter = make_adapter(self, self.info(key_id))
            with self._lock:
                self._adapters[key_id] = adapter
        return adapter  # type: ignore[return-value]

    @staticmethod
    def _check_scheme(info: KeyInfo, scheme: SignatureScheme) -> None:
        family = info.algorithm.family
        if family == "ed25519":
            if scheme.prehashed or scheme.hash_algorithm not in (None, "sha512"):
                raise UnsupportedAlgorithm("Ed25519 signs the message itself; no separate hash or prehash")
            return
        scheme.hash()  # validates the name
        if family == "ec" and scheme.padding is not None:
            raise UnsupportedAlgorithm("padding applies to RSA keys only")
        if family == "rsa" and scheme.padding not in (None, "pkcs1v15", "pss"):
            raise UnsupportedAlgorithm(f"unknown RSA padding {scheme.padding!r}")

"""``cryptography`` private-key classes whose ``sign()`` goes through a KeyStore.

cryptography's certificate, CRL and OCSP builders and pyjwt accept any
subclass of its private-key ABCs and call only ``sign()`` and the public
accessors, so a store-backed key works wherever a loaded key would.  The
methods that would reveal the private key raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from core.errors import UnsupportedAlgorithm
from core.keys.base import KeyInfo, SignatureScheme

if TYPE_CHECKING:
    from core.keys.base import KeyStore


def _hash_name(algorithm: Any) -> tuple[str, bool]:
    prehashed = isinstance(algorithm, utils.Prehashed)
    inner = algorithm._algorithm if prehashed else algorithm
    if not isinstance(inner, hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
        raise UnsupportedAlgorithm(f"hash {getattr(inner, 'name', inner)!r} is not allowed for signatures")
    return inner.name, prehashed


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise UnsupportedAlgorithm("private keys held by the key store cannot be exported or used for this")


class _StoreKey:
    def __init__(self, store: KeyStore, info: KeyInfo) -> None:
        self._store = store
        self._info = info
        self._public = info.public_key()

    @property
    def key_id(self) -> str:
        return self._info.key_id

    def public_key(self) -> Any:
        return self._public

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._info.key_id} ({self._info.algorithm.value}, {self._store.backend})>"

    private_bytes = _refuse
    private_bytes_raw = _refuse
    private_numbers = _refuse
    exchange = _refuse

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self


class StoreECKey(_StoreKey, ec.EllipticCurvePrivateKey):
    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedAlgorithm("only ECDSA signatures")
        name, prehashed = _hash_name(signature_algorithm.algorithm)
        return self._store.sign(self.key_id, data, SignatureScheme(name, prehashed=prehashed))


class StoreRSAKey(_StoreKey, rsa.RSAPrivateKey):
    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, ciphertext: bytes, padding: Any) -> NoReturn:
        _refuse()

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        name, prehashed = _hash_name(algorithm)
        if isinstance(padding_, padding.PSS):
            kind = "pss"
        elif isinstance(padding_, padding.PKCS1v15):
            kind = "pkcs1v15"
        else:
            raise UnsupportedAlgorithm(f"unsupported RSA padding {padding_.name}")
        return self._store.sign(self.key_id, data, SignatureScheme(name, prehashed=prehashed, padding=kind))


class StoreEd25519Key(_StoreKey, ed25519.Ed25519PrivateKey):
    def sign(self, data: bytes) -> bytes:
        return self._store.sign(self.key_id, data, SignatureScheme(hash_algorithm=None))


def make_adapter(store: KeyStore, info: KeyInfo) -> _StoreKey:
    family = info.algorithm.family
    if family == "ec":
        return StoreECKey(store, info)
    if family == "rsa":
        return StoreRSAKey(store, info)
    if family == "ed25519":
        return StoreEd25519Key(store, info)
    raise UnsupportedAlgorithm(f"no adapter for {info.algorithm.value}")


def sign_with_cryptography_key(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
    data: bytes,
    scheme: SignatureScheme,
) -> bytes:
    """Sign with a loaded ``cryptography`` key per ``scheme`` (used by software backends)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    algorithm: Any = scheme.hash()
    if scheme.prehashed:
        algorithm = utils.Prehashed(algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    if scheme.padding == "pss":
        pad: padding.AsymmetricPadding = padding.PSS(
            mgf=padding.MGF1(scheme.hash()), salt_length=padding.PSS.DIGEST_LENGTH
        )
    else:
        pad = padding.PKCS1v15()
    return key.sign(data, pad, algorithm)

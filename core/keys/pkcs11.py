"""The PKCS#11 key store: key pairs generated and used inside an HSM token.

This is the one module that imports python-pkcs11.  Private keys are created
in the token with ``CKA_SENSITIVE`` and without ``CKA_EXTRACTABLE``, so their
value never leaves it; every signature is a ``C_Sign`` call.

Objects on the token, per key (``key_id`` such as ``ec-1f2e3d4c5b6a7980``):

* the private key: ``CKA_LABEL`` = key id, ``CKA_ID`` = key id in ASCII,
  ``CKA_TOKEN``, ``CKA_PRIVATE``, ``CKA_SENSITIVE``, not ``CKA_EXTRACTABLE``,
  ``CKA_SIGN`` and no decrypt, unwrap or derive capability;
* the public key with the same label and id, from which the
  SubjectPublicKeyInfo is built once per key and cached;
* a private data object (``CKA_APPLICATION`` = ``hengxin``, ``CKA_LABEL`` = key
  id) holding the human label, algorithm and creation time as JSON.  Keys
  without it (made by another tool) are listed with their key id as label.

Process-wide facts of PKCS#11 shape the design:

* A module is initialised once per process (python-pkcs11 caches it), so the
  loaded modules are shared by every store of the process.
* The login state is shared by every session an application has with a
  token.  Each (module, token) therefore has one *login anchor*: a session that
  logged in with the PIN and stays open while any store uses the token.  Pooled
  sessions are opened without a PIN and inherit the login; closing one does not
  log the others out.  A second store for the same token must present the same
  PIN, which is compared with the anchor's, so a wrong PIN is still refused.
* python-pkcs11 passes no locking arguments to ``C_Initialize``; SoftHSM2 then
  does no locking of its own.  With ``serialize_calls`` (the default) one
  PKCS#11 call runs at a time in the process.

Sessions are pooled (bounded; a signature never opens a session once the pool
is warm) and each pooled session caches the key objects it has found.  A
session that goes bad (closed, invalid handle, token removed, login lost) is
dropped, the login is re-established and the operation is retried once.

Mechanisms: SoftHSM 2.6 offers only raw ``CKM_ECDSA`` for EC keys, so the
digest is computed on the host and the token's r||s is DER-encoded here.  RSA
uses ``CKM_SHAxxx_RSA_PKCS`` / ``CKM_SHAxxx_RSA_PKCS_PSS`` on data and
``CKM_RSA_PKCS`` (with a DigestInfo built here) / ``CKM_RSA_PKCS_PSS`` on a
digest.  Ed25519 uses ``CKM_EDDSA`` where the token offers
``CKM_EC_EDWARDS_KEY_PAIR_GEN`` (SoftHSM 2.6 built with EdDSA does).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from core.clock import isoformat_utc, parse_utc, utc_now
from core.errors import KeyNotFound, KeyStoreError, KeyStoreUnavailable, UnsupportedAlgorithm, WrongPassphrase
from core.keys.base import KeyAlgorithm, KeyInfo, KeyStore, PublicKey, SignatureScheme, public_key_der

T = TypeVar("T")

APPLICATION = "hengxin"
_KEY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_UNKNOWN_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# DER-encoded named-curve parameters (CKA_EC_PARAMS): the curve OIDs.
_P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")  # 1.2.840.10045.3.1.7
_P384_PARAMS = bytes.fromhex("06052b81040022")  # 1.3.132.0.34
_ED25519_PARAMS = bytes.fromhex("06032b6570")  # 1.3.101.112 (RFC 8410)
_ED25519_NAME_PARAMS = b"\x13\x0cedwards25519"  # PrintableString form some tokens use

_EC_CURVES: dict[bytes, tuple[ec.EllipticCurve, int]] = {
    _P256_PARAMS: (ec.SECP256R1(), 32),
    _P384_PARAMS: (ec.SECP384R1(), 48),
}

# DigestInfo prefixes for PKCS#1 v1.5 signatures of a digest (RFC 8017, section 9.2, note 1).
_DIGEST_INFO_PREFIX = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_RSA_PKCS_MECHANISM = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}
_RSA_PSS_MECHANISM = {
    "sha256": Mechanism.SHA256_RSA_PKCS_PSS,
    "sha384": Mechanism.SHA384_RSA_PKCS_PSS,
    "sha512": Mechanism.SHA512_RSA_PKCS_PSS,
}
# PSS with MGF1 over the same hash and a salt as long as the digest (what the file backend and Vault produce).
_PSS_PARAMS = {
    "sha256": (Mechanism.SHA256, MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, MGF.SHA512, 64),
}

_REQUIRED_MECHANISMS = {
    "ec": (Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA),
    "rsa": (Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.RSA_PKCS),
    "ed25519": (Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA),
}

# Failures after which a session is not reused, and the operation is retried once on a fresh one.
_SESSION_BROKEN = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.OperationActive,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.UserNotLoggedIn,
    p11.GeneralError,
)
# Failures that mean the login (shared by all sessions) is gone: log in again before the retry.
# A cached key handle turns invalid when the token logged out, so it counts too.
_LOGIN_LOST = (
    p11.UserNotLoggedIn,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
)
_TOKEN_GONE = (p11.NoSuchToken, p11.TokenNotPresent, p11.TokenNotRecognised, p11.DeviceRemoved, p11.SlotIDInvalid)
_NOT_SUPPORTED = (
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.KeyTypeInconsistent,
    p11.KeySizeRange,
    p11.DomainParamsInvalid,
    p11.FunctionNotSupported,
)


# ---------------------------------------------------------------------------
# Errors


class HSMError(KeyStoreError):
    """The token or module refused an operation for a reason not covered by a more specific leaf."""

    code = "keys.hsm_error"
    title_en = "The HSM refused the operation"
    title_zh = "密码模块拒绝了该操作"


class HSMPinIncorrect(WrongPassphrase):
    code = "keys.hsm_pin_incorrect"
    title_en = "The PIN does not log in to the HSM token"
    title_zh = "PIN 码无法登录密码模块令牌"


class HSMPinLocked(WrongPassphrase):
    code = "keys.hsm_pin_locked"
    title_en = "The HSM token's user PIN is locked"
    title_zh = "密码模块令牌的用户 PIN 已锁定"


class HSMTokenMissing(KeyStoreUnavailable):
    code = "keys.hsm_token_missing"
    title_en = "The HSM token is missing"
    title_zh = "找不到密码模块令牌"


class HSMModuleFailed(KeyStoreUnavailable):
    code = "keys.hsm_module_failed"
    title_en = "The PKCS#11 module cannot be used"
    title_zh = "PKCS#11 模块不可用"


class HSMBusy(KeyStoreUnavailable):
    code = "keys.hsm_busy"
    title_en = "All HSM sessions are busy"
    title_zh = "密码模块会话已全部占用"


# ---------------------------------------------------------------------------
# Pure helpers (no token needed)


def signing_request(algorithm: KeyAlgorithm, data: bytes, scheme: SignatureScheme) -> tuple[Mechanism, Any, bytes]:
    """The mechanism, mechanism parameter and input for ``C_Sign`` of ``data`` under ``scheme``.

    Raises UnsupportedAlgorithm when a prehashed input has the wrong length.
    """
    if algorithm.family == "ed25519":
        return Mechanism.EDDSA, None, data
    name = str(scheme.hash_algorithm)
    hash_algorithm = scheme.hash()
    if scheme.prehashed and len(data) != hash_algorithm.digest_size:
        raise UnsupportedAlgorithm(f"a prehashed {name} digest is {hash_algorithm.digest_size} bytes, not {len(data)}")
    if algorithm.family == "ec":
        digest = data if scheme.prehashed else _digest(hash_algorithm, data)
        return Mechanism.ECDSA, None, digest
    if scheme.padding == "pss":
        mechanism = Mechanism.RSA_PKCS_PSS if scheme.prehashed else _RSA_PSS_MECHANISM[name]
        return mechanism, _PSS_PARAMS[name], data
    if scheme.prehashed:
        return Mechanism.RSA_PKCS, None, _DIGEST_INFO_PREFIX[name] + data
    return _RSA_PKCS_MECHANISM[name], None, data


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    context = hashes.Hash(algorithm)
    context.update(data)
    return context.finalize()


def ecdsa_der_signature(raw: bytes) -> bytes:
    """Convert a PKCS#11 ECDSA signature (r || s, equal halves) to a DER ECDSA-Sig-Value."""
    if not raw or len(raw) % 2:
        raise HSMError(f"the token returned a malformed ECDSA signature of {len(raw)} bytes")
    half = len(raw) // 2
    return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def unwrap_point(value: bytes, raw_lengths: tuple[int, ...]) -> bytes:
    """The point of a ``CKA_EC_POINT`` value: either raw, or (as PKCS#11 specifies) a DER OCTET STRING."""
    if len(value) in raw_lengths:
        return value
    if len(value) >= 2 and value[0] == 0x04:
        length, offset = value[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
        inner = value[offset:]
        if len(inner) == length and len(inner) in raw_lengths:
            return inner
    raise HSMError(f"the token returned an EC point of unexpected form ({len(value)} bytes)")


def public_key_from_attributes(attributes: dict[Attribute, Any]) -> PublicKey:
    """Build a ``cryptography`` public key from a public key object's attributes.

    Needs ``CKA_KEY_TYPE`` and, for RSA, ``CKA_MODULUS`` and ``CKA_PUBLIC_EXPONENT``;
    for EC and EdDSA, ``CKA_EC_PARAMS`` and ``CKA_EC_POINT``.  Raises UnsupportedAlgorithm.
    """
    key_type = attributes[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(attributes[Attribute.MODULUS], "big")
        exponent = int.from_bytes(attributes[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    params = bytes(attributes[Attribute.EC_PARAMS])
    point = bytes(attributes[Attribute.EC_POINT])
    if key_type == KeyType.EC:
        if params not in _EC_CURVES:
            raise UnsupportedAlgorithm("the token holds an EC key on a curve Hengxin does not use")
        curve, size = _EC_CURVES[params]
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, unwrap_point(point, (1 + 2 * size, 1 + size)))
    if key_type == KeyType.EC_EDWARDS and params in (_ED25519_PARAMS, _ED25519_NAME_PARAMS):
        return ed25519.Ed25519PublicKey.from_public_bytes(unwrap_point(point, (32,)))
    raise UnsupportedAlgorithm(f"the token holds a key of type {key_type!r} that Hengxin does not use")


def _check_key_id(key_id: str) -> bytes:
    if not _KEY_ID.match(key_id):
        raise KeyNotFound(f"invalid key id {key_id!r}")
    return key_id.encode("ascii")


# ---------------------------------------------------------------------------
# Process-wide state: loaded modules and token logins


class _Login:
    """A logged-in anchor session for one token, shared by every store of the process using it."""

    def __init__(self, anchor: pkcs11.Session, pin_digest: bytes) -> None:
        self.anchor = anchor
        self.pin_digest = pin_digest
        self.users = 0
        self.closed = False

    def close(self) -> None:
        """Close the anchor, which logs the process out of the token (all sessions)."""
        if not self.closed:
            self.closed = True
            _close_quietly(self.anchor)


class _Module:
    """One PKCS#11 library as loaded (once per process) by python-pkcs11."""

    def __init__(self, path: str, lib: Any) -> None:
        self.path = path
        self.lib = lib
        self.serialize = False
        self.call_lock = threading.RLock()
        self.logins: dict[bytes, _Login] = {}  # by token serial number

    def calls(self) -> contextlib.AbstractContextManager[Any]:
        """Hold this while calling into the module (a no-op unless calls are serialised)."""
        return self.call_lock if self.serialize else contextlib.nullcontext()


_modules: dict[str, _Module] = {}
_registry_lock = threading.Lock()


def _load_module(path: Path, serialize: bool) -> _Module:
    with _registry_lock:
        module = _modules.get(str(path))
        if module is None:
            if not path.is_file():
                raise HSMModuleFailed(
                    f"the PKCS#11 module {path} does not exist", detail_zh=f"PKCS#11 模块 {path} 不存在"
                )
            try:
                lib = pkcs11.lib(str(path))
            except (p11.PKCS11Error, OSError) as e:
                raise HSMModuleFailed(
                    f"the PKCS#11 module {path} cannot be loaded or initialised ({type(e).__name__})",
                    detail_zh=f"PKCS#11 模块 {path} 无法加载或初始化",
                ) from e
            module = _Module(str(path), lib)
            _modules[str(path)] = module
        module.serialize = module.serialize or serialize
        return module


def _close_quietly(session: pkcs11.Session) -> None:
    # A session of a removed token or a lost login cannot be closed cleanly; it is gone either way.
    with contextlib.suppress(p11.PKCS11Error):
        session.close()


# ---------------------------------------------------------------------------
# The session pool


class _PooledSession:
    """A read/write session without its own login, plus the key objects found through it."""

    __slots__ = ("generation", "keys", "session")

    def __init__(self, session: pkcs11.Session, generation: int) -> None:
        self.session = session
        self.generation = generation
        self.keys: dict[str, Any] = {}


class _SessionPool:
    """At most ``size`` sessions; idle ones are reused, last in first out."""

    def __init__(self, size: int, wait_seconds: float) -> None:
        self.size = size
        self.wait_seconds = wait_seconds
        self.generation = 0
        self.opened = 0  # sessions opened over the pool's life
        self._idle: list[_PooledSession] = []
        self._count = 0  # open sessions, idle or in use
        self._condition = threading.Condition()

    @property
    def open_sessions(self) -> int:
        with self._condition:
            return self._count

    def acquire(self, open_session: Callable[[int], _PooledSession]) -> _PooledSession:
        """An idle session, or a new one while fewer than ``size`` are open; else wait.  Raises HSMBusy."""
        deadline = time.monotonic() + self.wait_seconds
        with self._condition:
            while not self._idle and self._count >= self.size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise HSMBusy(
                        f"all {self.size} HSM sessions stayed busy for {self.wait_seconds:g} s",
                        detail_zh=f"{self.size} 个密码模块会话在 {self.wait_seconds:g} 秒内均被占用",
                    )
                self._condition.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._count += 1
            generation = self.generation
        try:
            pooled = open_session(generation)
        except BaseException:
            self.forget()
            raise
        with self._condition:
            self.opened += 1
        return pooled

    def release(self, pooled: _PooledSession) -> bool:
        """Put ``pooled`` back; False if it predates a reset (the caller must close it)."""
        with self._condition:
            if pooled.generation != self.generation:
                self._count -= 1
                self._condition.notify()
                return False
            self._idle.append(pooled)
            self._condition.notify()
            return True

    def forget(self) -> None:
        """Account for a session that was (or will be) closed instead of released."""
        with self._condition:
            self._count -= 1
            self._condition.notify()

    def drain(self) -> list[_PooledSession]:
        """Take every idle session out and mark the busy ones stale; returns the idle ones to close."""
        with self._condition:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self.generation += 1
            self._condition.notify_all()
            return idle


# ---------------------------------------------------------------------------
# The key store


class PKCS11KeyStore(KeyStore):
    """Keys in a PKCS#11 token (SoftHSM2 or a hardware HSM).

    Construction does no I/O: the module is loaded, the token found and the
    PIN presented on first use or on :meth:`check`.  Errors: HSMModuleFailed
    and HSMTokenMissing (KeyStoreUnavailable), HSMPinIncorrect and
    HSMPinLocked (WrongPassphrase), HSMBusy, HSMError, KeyNotFound,
    UnsupportedAlgorithm.  No python-pkcs11 exception leaves this module.
    """

    backend = "pkcs11"

    def __init__(
        self,
        module: Path | str,
        token_label: str,
        pin: str,
        *,
        pool_size: int = 4,
        session_wait_seconds: float = 10.0,
        serialize_calls: bool = True,
    ) -> None:
        super().__init__()
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.module_path = Path(module)
        self.token_label = token_label
        self._pin = pin
        self._pin_digest = hashlib.sha256(pin.encode("utf-8")).digest()
        self._serialize = serialize_calls
        self._pool = _SessionPool(pool_size, session_wait_seconds)
        self._state_lock = threading.RLock()
        self._module: _Module | None = None
        self._token: Any = None
        self._serial: bytes | None = None
        self._login: _Login | None = None
        self._mechanisms: frozenset[Any] = frozenset()

    # -- statistics for tests and operators ------------------------------------------

    @property
    def sessions_opened(self) -> int:
        """Sessions opened by the pool since the store was created (the login anchor not counted)."""
        return self._pool.opened

    @property
    def sessions_open(self) -> int:
        """Pooled sessions open now, idle or in use."""
        return self._pool.open_sessions

    # -- connection ----------------------------------------------------------------

    def _connect(self) -> Any:
        """The token, logged in; loads the module and logs in on first use."""
        with self._state_lock:
            if self._token is not None and self._login is not None and not self._login.closed:
                return self._token
            if self._module is None:
                self._module = _load_module(self.module_path, self._serialize)
            module = self._module
            token = self._find_token(module)
            with module.calls():
                try:
                    mechanisms = frozenset(token.slot.get_mechanisms())
                except p11.PKCS11Error as e:
                    raise self._translate(e, "reading the token's mechanisms") from e
            self._login = self._log_in(module, token)
            self._token, self._mechanisms = token, mechanisms
            return token

    def _find_token(self, module: _Module) -> Any:
        with module.calls():
            try:
                return module.lib.get_token(token_label=self.token_label)
            except p11.MultipleTokensReturned as e:
                raise HSMError(
                    f"several tokens are labelled {self.token_label!r}; labels must be unique",
                    detail_zh=f"多个令牌的标签均为 {self.token_label!r}",
                ) from e
            except p11.PKCS11Error as e:
                raise self._translate(e, "looking for the token") from e

    def _log_in(self, module: _Module, token: Any) -> _Login:
        serial = bytes(token.serial)
        with _registry_lock:
            login = module.logins.get(serial)
            if login is not None and not login.closed:
                # The process is logged in already; the PIN must still be the right one.
                if not hmac.compare_digest(login.pin_digest, self._pin_digest):
                    raise self._pin_incorrect()
            else:
                with module.calls():
                    try:
                        anchor = token.open(rw=True, user_pin=self._pin)
                    except p11.UserAlreadyLoggedIn:
                        # Something else in this process (not a Hengxin store) logged in to the
                        # token: the PIN cannot be checked again, but the login is there to use.
                        anchor = token.open(rw=True)
                    except p11.PKCS11Error as e:
                        raise self._translate(e, "logging in to the token") from e
                login = _Login(anchor, self._pin_digest)
                module.logins[serial] = login
            login.users += 1
            self._serial = serial
            return login

    def _log_out(self) -> None:
        """Leave the shared login; the last store to leave closes the anchor (logging out)."""
        login, self._login = self._login, None
        if login is None or self._module is None:
            return
        with _registry_lock:
            login.users -= 1
            if login.users <= 0 or login.closed:
                if self._serial is not None and self._module.logins.get(self._serial) is login:
                    del self._module.logins[self._serial]
                with self._module.calls():
                    login.close()

    def _reset(self) -> None:
        """Drop every pooled session and the login, so the next operation starts afresh."""
        with self._state_lock:
            idle = self._pool.drain()
            if self._module is not None:
                with self._module.calls():
                    for pooled in idle:
                        _close_quietly(pooled.session)
            login = self._login
            if login is not None and self._module is not None:
                with _registry_lock, self._module.calls():
                    # Another store may have replaced the login already; only the one we used is closed.
                    if self._serial is not None and self._module.logins.get(self._serial) is login:
                        del self._module.logins[self._serial]
                    login.close()
            self._login = None
            self._token = None

    def _open_session(self, token: Any, generation: int) -> _PooledSession:
        assert self._module is not None
        with self._module.calls():
            try:
                return _PooledSession(token.open(rw=True), generation)
            except p11.PKCS11Error as e:
                raise self._translate(e, "opening a session") from e

    def _calls(self) -> contextlib.AbstractContextManager[Any]:
        return self._module.calls() if self._module is not None else contextlib.nullcontext()

    def _run(self, what: str, operation: Callable[[_PooledSession], T]) -> T:
        """Run ``operation`` on a pooled session; on a broken session or lost login, retry once afresh."""
        for attempt in (1, 2):
            pooled = self._pool.acquire(functools.partial(self._open_session, self._connect()))
            try:
                with self._calls():
                    result = operation(pooled)
            except p11.PKCS11Error as e:
                broken = isinstance(e, _SESSION_BROKEN)
                if broken:
                    with self._calls():
                        _close_quietly(pooled.session)
                    self._pool.forget()
                else:
                    pooled.keys.clear()
                    self._release(pooled)
                if isinstance(e, _LOGIN_LOST):
                    self._reset()
                if attempt == 1 and (broken or isinstance(e, _LOGIN_LOST)):
                    continue
                raise self._translate(e, what) from e
            except BaseException:
                self._release(pooled)
                raise
            self._release(pooled)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _release(self, pooled: _PooledSession) -> None:
        if not self._pool.release(pooled):
            with self._calls():
                _close_quietly(pooled.session)

    # -- errors ---------------------------------------------------------------------

    def _pin_incorrect(self) -> HSMPinIncorrect:
        return HSMPinIncorrect(
            f"the PIN from the secret store does not log in to token {self.token_label!r}",
            detail_zh=f"机密存储中的 PIN 无法登录令牌 {self.token_label!r}",
        )

    def _translate(self, error: p11.PKCS11Error, what: str) -> KeyStoreError:
        name = type(error).__name__
        if isinstance(error, p11.PinIncorrect | p11.PinInvalid | p11.PinLenRange):
            return self._pin_incorrect()
        if isinstance(error, p11.PinExpired):
            return HSMPinIncorrect(f"the user PIN of token {self.token_label!r} has expired; set a new one")
        if isinstance(error, p11.PinLocked):
            return HSMPinLocked(
                f"the user PIN of token {self.token_label!r} is locked after too many wrong attempts; "
                "the security officer must reset it",
                detail_zh=f"令牌 {self.token_label!r} 的用户 PIN 因多次错误已锁定，需由安全管理员重置",
            )
        if isinstance(error, p11.UserPinNotInitialized):
            return HSMPinIncorrect(f"token {self.token_label!r} has no user PIN yet (initialise it)")
        if isinstance(error, _TOKEN_GONE):
            return HSMTokenMissing(
                f"no token labelled {self.token_label!r} is present in PKCS#11 module {self.module_path}",
                detail_zh=f"PKCS#11 模块 {self.module_path} 中没有标签为 {self.token_label!r} 的令牌",
            )
        if isinstance(error, p11.NoSuchKey):
            return KeyNotFound(f"{what}: no such key on the token")
        if isinstance(error, _NOT_SUPPORTED):
            return UnsupportedAlgorithm(f"{what}: the token does not support this ({name})")
        if isinstance(error, p11.DeviceMemory):
            return HSMError(f"{what}: the token is out of memory (full?)")
        if isinstance(error, p11.SessionCount):
            return HSMBusy(f"{what}: the token allows no more sessions")
        return HSMError(f"{what} failed in the HSM ({name})")

    # -- token objects ------------------------------------------------------------------

    @staticmethod
    def _objects(session: Any, attributes: dict[Attribute, Any]) -> list[Any]:
        return list(session.get_objects(attributes))

    def _private_object(self, pooled: _PooledSession, key_id: str) -> Any:
        key = pooled.keys.get(key_id)
        if key is None:
            found = self._objects(
                pooled.session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: _check_key_id(key_id)}
            )
            if not found:
                raise KeyNotFound(f"key {key_id!r} is not on the token", detail_zh=f"令牌中没有密钥 {key_id!r}")
            if len(found) > 1:
                raise HSMError(f"the token holds several private keys with id {key_id!r}")
            key = pooled.keys[key_id] = found[0]
        return key

    def _info_from_token(self, session: Any, key_id: str, metadata: dict[str, Any] | None = None) -> KeyInfo:
        public = self._objects(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: _check_key_id(key_id)})
        if len(public) != 1:
            raise HSMError(f"key {key_id!r} has {len(public)} public key objects on the token; expected one")
        key_type = public[0][Attribute.KEY_TYPE]
        wanted = [Attribute.KEY_TYPE]
        if key_type == KeyType.RSA:
            wanted += [Attribute.MODULUS, Attribute.PUBLIC_EXPONENT]
        else:
            wanted += [Attribute.EC_PARAMS, Attribute.EC_POINT]
        public_key = public_key_from_attributes(public[0].get_attributes(wanted))
        if metadata is None:
            metadata = self._metadata(session, key_id)
        algorithm = KeyAlgorithm.of_public_key(public_key)
        created_at = _UNKNOWN_TIME
        if metadata.get("created_at"):
            with contextlib.suppress(ValueError, TypeError):
                created_at = parse_utc(metadata["created_at"])
        return KeyInfo(
            key_id=key_id,
            label=str(metadata.get("label") or key_id),
            algorithm=algorithm,
            backend=self.backend,
            created_at=created_at,
            public_key_der=public_key_der(public_key),
        )

    def _metadata(self, session: Any, key_id: str) -> dict[str, Any]:
        found = self._objects(
            session, {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: APPLICATION, Attribute.LABEL: key_id}
        )
        if not found:
            return {}
        try:
            value = json.loads(bytes(found[0][Attribute.VALUE]))
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    # -- KeyStore primitives -----------------------------------------------------------

    def _generate(self, label: str, algorithm: KeyAlgorithm) -> KeyInfo:
        self._connect()
        missing = [m.name for m in _REQUIRED_MECHANISMS[algorithm.family] if m not in self._mechanisms]
        if missing:
            hint = (
                " (SoftHSM2 offers Ed25519 from version 2.6 when built with EdDSA support)"
                if algorithm is KeyAlgorithm.ED25519
                else ""
            )
            raise UnsupportedAlgorithm(
                f"token {self.token_label!r} cannot make {algorithm.value} keys: it lacks "
                + ", ".join(f"CKM_{name}" for name in missing)
                + hint
            )
        key_id = f"{algorithm.family}-{secrets.token_hex(8)}"
        metadata = {"label": label, "algorithm": algorithm.value, "created_at": isoformat_utc(utc_now())}

        def generate(pooled: _PooledSession) -> KeyInfo:
            session = pooled.session
            public_template: dict[Attribute, Any] = {
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.VERIFY: True,
                Attribute.ENCRYPT: False,
                Attribute.WRAP: False,
            }
            private_template: dict[Attribute, Any] = {
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: False,
                Attribute.MODIFIABLE: False,
            }
            key_length = None
            if algorithm.family == "ec":
                key_type, mechanism = KeyType.EC, Mechanism.EC_KEY_PAIR_GEN
                public_template[Attribute.EC_PARAMS] = (
                    _P256_PARAMS if algorithm is KeyAlgorithm.EC_P256 else _P384_PARAMS
                )
            elif algorithm.family == "rsa":
                key_type, mechanism, key_length = KeyType.RSA, Mechanism.RSA_PKCS_KEY_PAIR_GEN, algorithm.rsa_bits
            else:
                key_type, mechanism = KeyType.EC_EDWARDS, Mechanism.EC_EDWARDS_KEY_PAIR_GEN
                public_template[Attribute.EC_PARAMS] = _ED25519_PARAMS
            _public, private = session.generate_keypair(
                key_type,
                key_length,
                id=key_id.encode("ascii"),
                label=key_id,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                mechanism=mechanism,
                public_template=public_template,
                private_template=private_template,
            )
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.MODIFIABLE: False,
                    Attribute.APPLICATION: APPLICATION,
                    Attribute.LABEL: key_id,
                    Attribute.VALUE: json.dumps(metadata, ensure_ascii=False).encode("utf-8"),
                }
            )
            pooled.keys[key_id] = private
            return self._info_from_token(session, key_id, metadata)

        return self._run(f"generating a {algorithm.value} key", generate)

    def _load_info(self, key_id: str) -> KeyInfo:
        _check_key_id(key_id)

        def load(pooled: _PooledSession) -> KeyInfo:
            self._private_object(pooled, key_id)  # raises KeyNotFound
            return self._info_from_token(pooled.session, key_id)

        return self._run(f"reading key {key_id!r}", load)

    def _list(self) -> list[KeyInfo]:
        def list_keys(pooled: _PooledSession) -> list[KeyInfo]:
            found = []
            for private in self._objects(pooled.session, {Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
                try:
                    key_id = bytes(private[Attribute.ID]).decode("ascii")
                except UnicodeDecodeError:
                    continue
                if not _KEY_ID.match(key_id):
                    continue  # not a key made for Hengxin (see the module docstring)
                try:
                    found.append(self._info_from_token(pooled.session, key_id))
                except UnsupportedAlgorithm:
                    continue
            return sorted(found, key=lambda info: info.key_id)

        return self._run("listing the token's keys", list_keys)

    def _sign(self, info: KeyInfo, data: bytes, scheme: SignatureScheme) -> bytes:
        mechanism, parameter, payload = signing_request(info.algorithm, data, scheme)

        def sign(pooled: _PooledSession) -> bytes:
            key = self._private_object(pooled, info.key_id)
            return bytes(key.sign(payload, mechanism=mechanism, mechanism_param=parameter))

        raw = self._run(f"signing with key {info.key_id!r}", sign)
        if info.algorithm.family == "ec":
            return ecdsa_der_signature(raw)
        return raw

    # -- operations ------------------------------------------------------------------------

    def key_attributes(self, key_id: str) -> dict[str, bool]:
        """The protection attributes of ``key_id``'s private key object as the token reports them.

        Keys: sensitive, always_sensitive, extractable, never_extractable, token,
        private, modifiable, sign, decrypt, unwrap, derive.  Raises KeyNotFound.
        """
        names = {
            "sensitive": Attribute.SENSITIVE,
            "always_sensitive": Attribute.ALWAYS_SENSITIVE,
            "extractable": Attribute.EXTRACTABLE,
            "never_extractable": Attribute.NEVER_EXTRACTABLE,
            "token": Attribute.TOKEN,
            "private": Attribute.PRIVATE,
            "modifiable": Attribute.MODIFIABLE,
            "sign": Attribute.SIGN,
            "decrypt": Attribute.DECRYPT,
            "unwrap": Attribute.UNWRAP,
            "derive": Attribute.DERIVE,
        }

        def read(pooled: _PooledSession) -> dict[str, bool]:
            values = self._private_object(pooled, key_id).get_attributes(list(names.values()))
            return {name: bool(values[attribute]) for name, attribute in names.items()}

        return self._run(f"reading the attributes of key {key_id!r}", read)

    def check(self) -> None:
        """Raise unless the token is present, logged in and answering now.

        Raises HSMModuleFailed, HSMTokenMissing, HSMPinIncorrect, HSMPinLocked or HSMError.
        """
        token = self._connect()
        assert self._module is not None
        present = self._find_token(self._module)
        if bytes(present.serial) != bytes(token.serial):
            # Another token now carries the label: start over with it.
            self._reset()
        self._run(
            "checking the token",
            lambda pooled: self._objects(
                pooled.session, {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: "hengxin-readiness-probe"}
            ),
        )

    def close(self) -> None:
        """Close the pooled sessions and leave the login (the last store of the process logs out)."""
        with self._state_lock:
            idle = self._pool.drain()
            with self._calls():
                for pooled in idle:
                    _close_quietly(pooled.session)
            self._log_out()
            self._token = None

    def __repr__(self) -> str:
        return f"<PKCS11KeyStore token={self.token_label!r} module={str(self.module_path)!r}>"

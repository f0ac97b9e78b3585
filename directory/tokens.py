"""JWT access tokens signed through the KeyStore, and the random tokens and secrets of the auth service.

Access tokens are ES256 JWTs (RFC 7519, profile of RFC 9068: ``typ`` is
``at+jwt``).  The signing key is the platform key of purpose ``jwt``; after
a rotation the previous one stays as ``jwt-previous`` and is still published
in the JWKS and accepted, so tokens issued just before a rotation keep
working until they expire (the overlap).  The key ``kid`` is the first 32
hex digits of the SHA-256 of the public key, not the key store's identifier.

Refresh tokens and client secrets are 256 random bits; only their hashes are
stored (refresh tokens: SHA-256; client secrets: HMAC-SHA256 under a server
key, so a stolen table alone is not enough to test guesses).

Verified signatures are remembered: an access token is typically presented
many times in its five minutes (every API call, every introspection), and
the ECDSA verification is the costliest part of checking one.  The cache
(:class:`JWTKeys`) maps the exact token text to the claims it carried when
its signature verified; a hit still requires the signing key to be one we
accept now (a key retired by a rotation drops its tokens) and still checks
expiry against the clock.  Only tokens that verified are stored, so the
cache cannot be filled with forgeries; it is bounded and holds nothing
secret beyond the tokens themselves, which live in this process's memory
for their lifetime anyway.  Whether the session is still alive is not
cached: callers read it from the database every time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.keys.base import KeyStore
from core.store import read_transaction, transaction
from core.store.models import PlatformKeyRow

CURRENT = "jwt"
PREVIOUS = "jwt-previous"
ALGORITHM = "ES256"
KEY_ALGORITHM = "ec-p256"
REFRESH_PREFIX = "hxr_"
CLIENT_SECRET_PREFIX = "hxs_"  # noqa: S105 - a prefix, not a secret
VERIFIED_CACHE_SIZE = 4096  # tokens whose signature verified (least recently used dropped); ~2 KiB each


class InvalidAccessToken(Exception):
    """An access token that does not verify (signature, expiry, issuer, audience, unknown key)."""


def random_token(prefix: str) -> str:
    """256 random bits, URL-safe, with a prefix that leak scanners can recognise."""
    return prefix + secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key`` (client secrets), hex."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True)
class SigningKey:
    purpose: str
    key_id: str
    kid: str
    public_key: Any = dataclasses.field(default=None, compare=False, repr=False)


class JWTKeys:
    """The current and previous JWT signing keys, their JWKS, and token encoding and decoding."""

    def __init__(
        self, keystore: KeyStore, sessions: sessionmaker[Session], clock: Clock, *, issuer: str, audience: str
    ) -> None:
        self.keystore = keystore
        self.sessions = sessions
        self.clock = clock
        self.issuer = issuer
        self.audience = audience
        self._keys: dict[str, SigningKey] = {}
        self._lock = threading.Lock()
        # token -> (claims, kid): tokens whose signature, issuer and audience verified (see the module docstring).
        self._verified: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()

    def _kid(self, key_id: str) -> str:
        return self.keystore.info(key_id).fingerprint[:32]

    def load(self) -> None:
        """Read the key rows (again); another node may have rotated."""
        with read_transaction(self.sessions) as session:
            rows = {p: session.get(PlatformKeyRow, p) for p in (CURRENT, PREVIOUS)}
        keys = {}
        for purpose, row in rows.items():
            if row is not None:
                keys[purpose] = SigningKey(purpose, row.key_id, self._kid(row.key_id),
                                           self.keystore.public_key(row.key_id))
        with self._lock:
            self._keys = keys

    def ensure(self) -> SigningKey:
        """The current signing key, generated on first use."""
        if CURRENT not in self._keys:
            self.load()
        if CURRENT not in self._keys:
            info = self.keystore.generate("jwt", KEY_ALGORITHM)
            with transaction(self.sessions) as session:
                if session.get(PlatformKeyRow, CURRENT) is None:
                    session.add(PlatformKeyRow(purpose=CURRENT, key_id=info.key_id, created_at=self.clock()))
            self.load()
        return self._keys[CURRENT]

    def rotate(self, session: Session) -> tuple[SigningKey | None, str]:
        """Make a new current key inside ``session``; the old current becomes the previous (the old previous
        is no longer accepted).  Returns the retired key and the new key id; call :meth:`load` after commit."""
        info = self.keystore.generate("jwt", KEY_ALGORITHM)
        now = self.clock()
        current = session.get(PlatformKeyRow, CURRENT)
        previous = session.get(PlatformKeyRow, PREVIOUS)
        retired = None
        if current is not None:
            retired = SigningKey(PREVIOUS, current.key_id, self._kid(current.key_id))
            if previous is None:
                session.add(PlatformKeyRow(purpose=PREVIOUS, key_id=current.key_id, created_at=now))
            else:
                previous.key_id, previous.created_at = current.key_id, now
            current.key_id, current.created_at = info.key_id, now
        else:
            session.add(PlatformKeyRow(purpose=CURRENT, key_id=info.key_id, created_at=now))
        return retired, info.key_id

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set with the current and the previous public key."""
        self.ensure()
        keys = []
        for key in (self._keys.get(CURRENT), self._keys.get(PREVIOUS)):
            if key is None:
                continue
            public_key = self.keystore.public_key(key.key_id)
            if not isinstance(public_key, ec.EllipticCurvePublicKey):  # pragma: no cover - generated as ec-p256
                continue
            jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
            jwk.update({"kid": key.kid, "use": "sig", "alg": ALGORITHM})
            keys.append(jwk)
        return {"keys": keys}

    def encode(self, claims: dict[str, Any], lifetime: dt.timedelta) -> tuple[str, dict[str, Any]]:
        """Sign an access token with the current key; returns the token and its full claims."""
        key = self.ensure()
        now = self.clock()
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
            "jti": secrets.token_urlsafe(16),
            **claims,
        }
        token = jwt.encode(
            payload,
            self.keystore.private_key(key.key_id),  # type: ignore[arg-type]
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": "at+jwt"},
        )
        return token, payload

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; raises :class:`InvalidAccessToken`."""
        with self._lock:
            cached = self._verified.get(token)
            if cached is not None:
                self._verified.move_to_end(token)
        if cached is not None and self._by_kid(cached[1]) is not None:
            claims = dict(cached[0])
        else:
            claims = self._verify(token)
        now = self.clock().timestamp()
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise InvalidAccessToken("expired")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 5:
            raise InvalidAccessToken("not yet valid")
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        """Check the signature, algorithm, issuer, audience and required claims; remember the token if it passed."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise InvalidAccessToken("not a JWT") from e
        if header.get("alg") != ALGORITHM:
            raise InvalidAccessToken("unexpected algorithm")
        kid = header.get("kid")
        key = self._by_kid(kid)
        if key is None:
            self.load()  # rotated on another node?
            key = self._by_kid(kid)
        if key is None:
            raise InvalidAccessToken("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # decode() checks expiry against our clock, not the system's (tests freeze time).
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"], "verify_exp": False,
                         "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError as e:
            raise InvalidAccessToken(str(e)) from e
        with self._lock:
            self._verified[token] = (dict(claims), key.kid)
            while len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return claims

    def _by_kid(self, kid: object) -> SigningKey | None:
        for key in self._keys.values():
            if key.kid == kid:
                return key
        return None


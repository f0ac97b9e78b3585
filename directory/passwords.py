"""Password hashing (argon2id), the password policy and the lockout rules.

Everything here is pure except the hasher, which only burns CPU and memory:
the service decides what to store, the functions below decide what a
password or a failed login means.

- :class:`PasswordHasher`: argon2id through argon2-cffi with the cost from
  ``[passwords]`` (default t=2, m=19456 KiB, p=1, OWASP's recommendation).
  Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``),
  which slapd's argon2 module verifies as ``{ARGON2}`` values, whatever cost
  they were made with.  :meth:`PasswordHasher.dummy_hash` is a hash of a
  random secret with the same cost: the service verifies an unknown login's
  password against it, so an unknown login costs the same hasher work as a
  wrong password.
- :class:`PasswordPolicy`: length, character classes, not containing the
  login, expiry.  History is checked by the service (it needs the old hashes).
- :class:`LockoutPolicy` with :func:`register_account_failure` and
  :func:`register_source_failure`: N failures within a window lock an
  account temporarily; after M temporary lockouts without a success in
  between, permanently.  Failures are also counted per source address,
  which blocks password spraying across many accounts.

Passwords are hashed as their UTF-8 bytes without Unicode normalisation, as
an LDAP simple bind sends them, so Hengxin and slapd agree on every password.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import secrets
import threading
from collections.abc import Iterator
from typing import Literal

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.config import PasswordSettings
from directory.service_errors import PasswordPolicyViolation

log = logging.getLogger("hengxin.directory.passwords")


@dataclasses.dataclass(frozen=True)
class Argon2Parameters:
    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1

    @classmethod
    def from_settings(cls, settings: PasswordSettings) -> Argon2Parameters:
        return cls(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)


class PasswordHasher:
    """argon2id hashing and verification with fixed parameters.

    ``max_concurrent`` bounds how many hashes this process computes at once (None: no bound).  Each one
    allocates ``memory_kib`` and keeps a core busy for tens of milliseconds, so more at once than there are
    cores only adds memory in use (a login flood on 40 request threads: 40 x 19 MiB) and cache contention,
    which makes every hash slower and the slowest logins much slower; callers beyond the bound wait in turn.
    """

    def __init__(
        self,
        parameters: Argon2Parameters = Argon2Parameters(),  # noqa: B008 - frozen default
        *,
        max_concurrent: int | None = None,
    ) -> None:
        self.parameters = parameters
        self._slots = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None
        self._hasher = argon2.PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """A new argon2id PHC string for ``password`` (random salt)."""
        with self._slot():
            return self._hasher.hash(password)

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        if self._slots is None:
            yield
            return
        with self._slots:
            yield

    def matches(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` is the one ``password_hash`` was made from.

        A malformed stored hash never matches (and is logged): it must not
        lock the caller out with an error that differs from a wrong password.
        """
        try:
            with self._slot():
                return self._hasher.verify(password_hash, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            log.error("a stored password hash is not a valid argon2 hash")
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than the configured ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    def dummy_hash(self) -> str:
        """A hash of a random secret with the configured cost, made once (for unknown logins)."""
        if self._dummy is None:
            self._dummy = self.hash(secrets.token_urlsafe(24))
        return self._dummy


# ---------------------------------------------------------------------------
# Policy.


def character_classes(password: str) -> set[str]:
    """Which of lower-case, upper-case, digit and other characters ``password`` uses."""
    classes = set()
    for char in password:
        if char.isdigit():
            classes.add("digit")
        elif char.islower():
            classes.add("lower")
        elif char.isupper():
            classes.add("upper")
        else:
            classes.add("other")  # punctuation, spaces, and scripts without case such as Chinese
    return classes


@dataclasses.dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 10
    max_length: int = 128
    min_character_classes: int = 3
    history: int = 5
    max_age_days: int = 90

    @classmethod
    def from_settings(cls, settings: PasswordSettings) -> PasswordPolicy:
        return cls(
            settings.min_length,
            settings.max_length,
            settings.min_character_classes,
            settings.history,
            settings.max_age_days,
        )

    def check(self, password: str, *, login: str = "") -> None:
        """Raise :class:`PasswordPolicyViolation` (with ``rule``) when ``password`` breaks a rule.

        Rules, checked in this order: ``min_length``, ``max_length``,
        ``control_characters``, ``character_classes``, ``contains_login``.
        """
        if len(password) < self.min_length:
            raise PasswordPolicyViolation(
                f"the password must have at least {self.min_length} characters",
                detail_zh=f"密码至少需要 {self.min_length} 个字符",
                rule="min_length",
                min_length=self.min_length,
            )
        if len(password) > self.max_length:
            raise PasswordPolicyViolation(
                f"the password must have at most {self.max_length} characters",
                detail_zh=f"密码最多 {self.max_length} 个字符",
                rule="max_length",
                max_length=self.max_length,
            )
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in password):
            raise PasswordPolicyViolation(
                "the password must not contain control characters",
                detail_zh="密码不能包含控制字符",
                rule="control_characters",
            )
        used = len(character_classes(password))
        if used < self.min_character_classes:
            raise PasswordPolicyViolation(
                f"the password must use at least {self.min_character_classes} of: lower-case letters, "
                "upper-case letters, digits, other characters",
                detail_zh=f"密码须包含小写字母、大写字母、数字、其他字符中的至少 {self.min_character_classes} 类",
                rule="character_classes",
                min_character_classes=self.min_character_classes,
            )
        if login and len(login) >= 3 and login.casefold() in password.casefold():
            raise PasswordPolicyViolation(
                "the password must not contain the login name",
                detail_zh="密码不能包含登录名",
                rule="contains_login",
            )

    def expires_at(self, changed_at: dt.datetime | None) -> dt.datetime | None:
        """When a password set at ``changed_at`` expires (None: never)."""
        if changed_at is None or self.max_age_days <= 0:
            return None
        return changed_at + dt.timedelta(days=self.max_age_days)


# ---------------------------------------------------------------------------
# Lockout.


@dataclasses.dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    window: dt.timedelta = dt.timedelta(minutes=15)
    duration: dt.timedelta = dt.timedelta(minutes=15)
    permanent_after: int = 3
    source_threshold: int = 20
    source_window: dt.timedelta = dt.timedelta(minutes=15)
    source_block: dt.timedelta = dt.timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: PasswordSettings) -> LockoutPolicy:
        return cls(
            threshold=settings.lockout_threshold,
            window=dt.timedelta(seconds=settings.lockout_window_seconds),
            duration=dt.timedelta(seconds=settings.lockout_duration_seconds),
            permanent_after=settings.lockout_permanent_after,
            source_threshold=settings.source_threshold,
            source_window=dt.timedelta(seconds=settings.source_window_seconds),
            source_block=dt.timedelta(seconds=settings.source_block_seconds),
        )


@dataclasses.dataclass(frozen=True)
class AccountCounters:
    """The lockout state stored on a user."""

    failed_logins: int = 0
    window_start: dt.datetime | None = None
    locked_until: dt.datetime | None = None
    lockout_count: int = 0

    def temporarily_locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


LockoutOutcome = Literal["counted", "temporary", "permanent"]


def register_account_failure(
    counters: AccountCounters, now: dt.datetime, policy: LockoutPolicy
) -> tuple[AccountCounters, LockoutOutcome]:
    """Count one wrong password; say whether it locks the account, and how.

    Failures older than the window are forgotten.  Reaching the threshold
    starts a temporary lockout (the count starts again); the
    ``permanent_after``-th temporary lockout is permanent instead, which the
    caller records as the status ``locked`` (only an administrator lifts it).
    """
    window_start = counters.window_start
    failures = counters.failed_logins
    if window_start is None or now - window_start >= policy.window:
        window_start, failures = now, 0
    failures += 1
    if failures < policy.threshold:
        return dataclasses.replace(counters, failed_logins=failures, window_start=window_start), "counted"
    lockouts = counters.lockout_count + 1
    if lockouts >= policy.permanent_after:
        return AccountCounters(0, None, None, lockouts), "permanent"
    return AccountCounters(0, None, now + policy.duration, lockouts), "temporary"


@dataclasses.dataclass(frozen=True)
class SourceCounters:
    failures: int = 0
    window_start: dt.datetime | None = None
    blocked_until: dt.datetime | None = None

    def blocked(self, now: dt.datetime) -> bool:
        return self.blocked_until is not None and self.blocked_until > now


def register_source_failure(
    counters: SourceCounters, now: dt.datetime, policy: LockoutPolicy
) -> tuple[SourceCounters, bool]:
    """Count one failed login from a source address; True when this failure blocks the source."""
    window_start, failures = counters.window_start, counters.failures
    if window_start is None or now - window_start >= policy.source_window:
        window_start, failures = now, 0
    failures += 1
    if failures >= policy.source_threshold:
        return SourceCounters(0, now, now + policy.source_block), True
    return SourceCounters(failures, window_start, counters.blocked_until), False

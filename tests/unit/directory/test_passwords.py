"""Password hashing, policy and lockout rules (pure functions; a cheap argon2 cost except where stated)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.config import PasswordSettings
from directory.passwords import (
    AccountCounters,
    Argon2Parameters,
    LockoutPolicy,
    PasswordHasher,
    PasswordPolicy,
    SourceCounters,
    character_classes,
    register_account_failure,
    register_source_failure,
)
from directory.service_errors import PasswordPolicyViolation

CHEAP = Argon2Parameters(time_cost=1, memory_kib=64, parallelism=1)
NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
POLICY = LockoutPolicy(
    threshold=3,
    window=dt.timedelta(minutes=10),
    duration=dt.timedelta(minutes=5),
    permanent_after=2,
    source_threshold=4,
    source_window=dt.timedelta(minutes=10),
    source_block=dt.timedelta(minutes=15),
)


def test_hash_is_argon2id_with_the_configured_cost_and_verifies() -> None:
    hasher = PasswordHasher(CHEAP)
    value = hasher.hash("Correct-Horse-9")
    assert value.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert hasher.matches(value, "Correct-Horse-9")
    assert not hasher.matches(value, "correct-horse-9")
    assert not hasher.matches("not a hash", "anything")  # a corrupt stored hash never matches
    assert not hasher.needs_rehash(value)
    assert PasswordHasher(Argon2Parameters(2, 128, 1)).needs_rehash(value)


def test_dummy_hash_has_the_same_cost_and_is_made_once() -> None:
    hasher = PasswordHasher(CHEAP)
    dummy = hasher.dummy_hash()
    assert dummy is hasher.dummy_hash()
    assert dummy.startswith("$argon2id$v=19$m=64,t=1,p=1$")


def test_a_bounded_hasher_never_computes_more_hashes_at_once_than_allowed() -> None:
    hasher = PasswordHasher(CHEAP, max_concurrent=2)
    value = hasher.hash("Correct-Horse-9")
    inside, most = 0, 0
    lock = threading.Lock()
    real = hasher._hasher

    class CountingHasher:
        def verify(self, stored: str, password: str) -> bool:
            nonlocal inside, most
            with lock:
                inside += 1
                most = max(most, inside)
            try:
                time.sleep(0.02)  # long enough for the other threads to try to enter
                return bool(real.verify(stored, password))
            finally:
                with lock:
                    inside -= 1

    hasher._hasher = CountingHasher()  # type: ignore[assignment]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: hasher.matches(value, "Correct-Horse-9"), range(16)))
    assert results == [True] * 16
    assert most == 2
    assert not hasher.matches(value, "wrong")  # a refusal releases its slot too
    assert PasswordHasher(CHEAP)._slots is None  # unbounded unless asked


def test_default_parameters_are_owasps() -> None:
    assert Argon2Parameters.from_settings(PasswordSettings()) == Argon2Parameters(2, 19456, 1)


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Sh0rt!", "min_length"),
        ("A1-" + "x" * 200, "max_length"),
        ("Line\nbreak-Pass-1", "control_characters"),
        ("onlylowercaseletters", "character_classes"),
        ("lowercase-and-1234", None),
        ("Has-Zhangwei-2026", "contains_login"),
    ],
)
def test_policy_rules(password: str, rule: str | None) -> None:
    policy = PasswordPolicy(min_length=10, max_length=128, min_character_classes=3)
    if rule is None:
        policy.check(password, login="zhangwei")
        return
    with pytest.raises(PasswordPolicyViolation) as caught:
        policy.check(password, login="zhangwei")
    assert caught.value.code == "directory.password_policy"
    assert caught.value.extra["rule"] == rule


def test_chinese_characters_count_as_other_characters() -> None:
    assert character_classes("密码abc1") == {"other", "lower", "digit"}


def test_password_expiry() -> None:
    assert PasswordPolicy(max_age_days=90).expires_at(NOW) == NOW + dt.timedelta(days=90)
    assert PasswordPolicy(max_age_days=0).expires_at(NOW) is None
    assert PasswordPolicy().expires_at(None) is None


def test_account_failures_lock_temporarily_then_permanently() -> None:
    counters = AccountCounters()
    outcomes = []
    for minute in range(3):
        counters, outcome = register_account_failure(counters, NOW + dt.timedelta(minutes=minute), POLICY)
        outcomes.append(outcome)
    assert outcomes == ["counted", "counted", "temporary"]
    assert counters.locked_until == NOW + dt.timedelta(minutes=2 + 5)
    assert counters.temporarily_locked(NOW + dt.timedelta(minutes=6))
    assert not counters.temporarily_locked(NOW + dt.timedelta(minutes=8))
    later = NOW + dt.timedelta(minutes=30)
    for second in range(3):
        counters, outcome = register_account_failure(counters, later + dt.timedelta(seconds=second), POLICY)
    assert outcome == "permanent" and counters.lockout_count == 2 and counters.locked_until is None


def test_account_failures_outside_the_window_start_again() -> None:
    counters, _ = register_account_failure(AccountCounters(), NOW, POLICY)
    counters, _ = register_account_failure(counters, NOW + dt.timedelta(minutes=1), POLICY)
    counters, outcome = register_account_failure(counters, NOW + dt.timedelta(minutes=11), POLICY)
    assert (outcome, counters.failed_logins, counters.window_start) == ("counted", 1, NOW + dt.timedelta(minutes=11))


def test_source_failures_block_the_source() -> None:
    counters = SourceCounters()
    blocked = []
    for _ in range(4):
        counters, now_blocked = register_source_failure(counters, NOW, POLICY)
        blocked.append(now_blocked)
    assert blocked == [False, False, False, True]
    assert counters.blocked(NOW + dt.timedelta(minutes=14))
    assert not counters.blocked(NOW + dt.timedelta(minutes=16))

"""Login through the directory service: lockout, uniform failures, password policy, history, rehash, expiry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from api.errors import problem_document
from api.platform import Platform
from core.clock import FrozenClock
from core.config import PasswordSettings
from directory.models import UserRow
from directory.passwords import Argon2Parameters, PasswordHasher
from directory.service import DirectoryService
from directory.service_errors import InvalidCredentials, PasswordExpired, PasswordPolicyViolation
from tests.integration.directory.platforms import (
    GOOD_PASSWORD,
    CountingHasher,
    audit_records,
    directory_settings,
    frozen_clock,
    open_directory_platform,
    service_of,
)

ADMIN = "token:admin"
LOCKOUT = {
    "lockout_threshold": 3,
    "lockout_window_seconds": 600,
    "lockout_duration_seconds": 300,
    "lockout_permanent_after": 2,
    "source_threshold": 5,
    "source_window_seconds": 600,
    "source_block_seconds": 900,
    "history": 2,
    "max_age_days": 90,
}


@pytest.fixture
def clock() -> FrozenClock:
    return frozen_clock()


@pytest.fixture
def platform(tmp_path: Path, clock: FrozenClock) -> Iterator[Platform]:
    platform = open_directory_platform(directory_settings(tmp_path, passwords=LOCKOUT), clock=clock)
    yield platform
    platform.close()


@pytest.fixture
def service(platform: Platform) -> DirectoryService:
    service = service_of(platform)
    service.create_user(ADMIN, login="zhangwei", display_name="张伟", password=GOOD_PASSWORD)
    return service


def fail(service: DirectoryService, login: str, password: str, source: str = "10.0.0.1") -> InvalidCredentials:
    with pytest.raises(InvalidCredentials) as caught:
        service.authenticate(login, password, source)
    return caught.value


def reasons(platform: Platform) -> list[str | None]:
    return [r.details.get("reason") for r in audit_records(platform, "directory.authenticate")]


def test_right_password_logs_in_and_is_audited(service: DirectoryService, platform: Platform) -> None:
    user = service.authenticate("ZhangWei", GOOD_PASSWORD, "10.0.0.1")
    assert user.login == "zhangwei" and user.last_login_at is not None
    (record,) = audit_records(platform, "directory.authenticate")
    assert (record.outcome, record.source, record.target) == ("success", "10.0.0.1", "user:zhangwei")


def test_unknown_login_costs_one_verification_and_fails_exactly_like_a_wrong_password(
    service: DirectoryService, platform: Platform
) -> None:
    counting = CountingHasher(service.hasher)
    service.hasher = counting

    wrong = fail(service, "zhangwei", "Wrong-Password-1")
    assert counting.calls == {"matches": 1}
    unknown = fail(service, "nobody", "Wrong-Password-1")
    assert counting.calls == {"matches": 2}
    invalid_login = fail(service, "不是登录名", "Wrong-Password-1")
    assert counting.calls == {"matches": 3}

    documents = [
        problem_document(error, language=language, request_id="r", instance="/login")
        for error in (wrong, unknown, invalid_login)
        for language in ("en", "zh-CN")
    ]
    assert documents[0] == documents[2] == documents[4] and documents[1] == documents[3] == documents[5]
    assert documents[0]["code"] == "directory.invalid_credentials" and documents[0]["status"] == 401
    # The audit log knows the difference.
    assert reasons(platform) == ["wrong_password", "unknown_user", "unknown_user"]
    assert all(r.outcome == "failure" for r in audit_records(platform, "directory.authenticate"))


def test_lockout_is_temporary_then_permanent_and_hidden_from_the_caller(
    service: DirectoryService, platform: Platform, clock: FrozenClock
) -> None:
    for _ in range(3):
        fail(service, "zhangwei", "Wrong-Password-1")
    assert service.get_user("zhangwei").locked_until is not None
    # Locked: even the right password gets the same answer as a wrong one.
    error = fail(service, "zhangwei", GOOD_PASSWORD)
    assert error.code == "directory.invalid_credentials"
    assert reasons(platform)[-1] == "temporarily_locked"
    records = audit_records(platform, "directory.authenticate")
    assert records[2].details["lockout"] == "temporary"

    clock.advance(seconds=301)
    assert service.authenticate("zhangwei", GOOD_PASSWORD, "10.0.0.2").login == "zhangwei"
    assert service.get_user("zhangwei").lockout_count == 0  # a success forgets earlier lockouts

    for _ in range(3):
        fail(service, "zhangwei", "Wrong-Password-1", "10.0.0.3")
    clock.advance(seconds=301)
    for _ in range(3):
        fail(service, "zhangwei", "Wrong-Password-1", "10.0.0.4")
    user = service.get_user("zhangwei")
    assert (user.status, user.lock_reason) == ("locked", "lockout")  # the second lockout in a row is permanent
    clock.advance(days=1)
    fail(service, "zhangwei", GOOD_PASSWORD, "10.0.0.5")
    assert reasons(platform)[-1] == "account_locked"
    assert [a.name for a in platform.alerts.history] == ["directory.account_locked"]

    service.unlock_user(ADMIN, "zhangwei")
    assert service.authenticate("zhangwei", GOOD_PASSWORD, "10.0.0.5").status == "active"


def test_failures_outside_the_window_are_forgotten(service: DirectoryService, clock: FrozenClock) -> None:
    for _ in range(2):
        fail(service, "zhangwei", "Wrong-Password-1")
    clock.advance(seconds=601)
    for _ in range(2):
        fail(service, "zhangwei", "Wrong-Password-1")
    user = service.get_user("zhangwei")
    assert (user.failed_logins, user.locked_until) == (2, None)


def test_failures_are_counted_per_source_address_across_accounts(
    service: DirectoryService, platform: Platform, clock: FrozenClock
) -> None:
    service.create_user(ADMIN, login="lina", display_name="李娜", password=GOOD_PASSWORD)
    # Password spraying: one guess per account, never enough to lock an account.
    for login in ("zhangwei", "lina", "ghost1", "ghost2", "ghost3"):
        fail(service, login, "Spring2026!", "192.0.2.7")
    assert service.get_user("zhangwei").locked_until is None
    # The source is blocked now: the right password fails from there, not from elsewhere.
    fail(service, "lina", GOOD_PASSWORD, "192.0.2.7")
    assert reasons(platform)[-1] == "source_blocked"
    assert service.authenticate("lina", GOOD_PASSWORD, "192.0.2.8").login == "lina"
    assert "directory.source_blocked" in [a.name for a in platform.alerts.history]

    clock.advance(seconds=901)
    assert service.authenticate("lina", GOOD_PASSWORD, "192.0.2.7").login == "lina"


def test_disabled_and_expired_accounts_cannot_log_in(
    service: DirectoryService, platform: Platform, clock: FrozenClock
) -> None:
    service.create_user(
        ADMIN, login="temp", display_name="临时工", password=GOOD_PASSWORD, expires_at=clock() + dt.timedelta(days=1)
    )
    assert service.authenticate("temp", GOOD_PASSWORD).login == "temp"
    clock.advance(days=2)
    fail(service, "temp", GOOD_PASSWORD)
    service.disable_user(ADMIN, "zhangwei", reason="离职")
    fail(service, "zhangwei", GOOD_PASSWORD)
    assert reasons(platform)[-2:] == ["account_expired", "account_disabled"]
    assert service.get_user("temp").expired


def test_password_policy_rules_each_refuse_with_their_rule(service: DirectoryService) -> None:
    cases = {
        "Ab1-short": "min_length",
        "alllowercaseletters": "character_classes",
        "Zhangwei-2026-pass": "contains_login",
        "Tab\there-Password-1": "control_characters",
    }
    for password, rule in cases.items():
        with pytest.raises(PasswordPolicyViolation) as caught:
            service.set_password(ADMIN, "zhangwei", password)
        assert caught.value.extra["rule"] == rule, password
    # Chinese characters count as "other" characters.
    service.set_password(ADMIN, "zhangwei", "密码很长的口令abc123")


def test_password_history_refuses_the_current_and_the_last_n(service: DirectoryService) -> None:
    passwords = ["Second-Pass-22", "Third-Pass-333", "Fourth-Pass-4444"]
    for password in passwords:
        service.set_password(ADMIN, "zhangwei", password)
    for reused in (passwords[-1], passwords[-2], passwords[-3]):
        with pytest.raises(PasswordPolicyViolation) as caught:
            service.set_password(ADMIN, "zhangwei", reused)
        assert caught.value.extra["rule"] == "history"
    # history = 2: the first password has dropped out and may be used again.
    service.set_password(ADMIN, "zhangwei", GOOD_PASSWORD)
    assert service.authenticate("zhangwei", GOOD_PASSWORD).login == "zhangwei"


def test_an_expired_password_must_be_changed_first(
    service: DirectoryService, platform: Platform, clock: FrozenClock
) -> None:
    clock.advance(days=91)
    with pytest.raises(PasswordExpired) as caught:
        service.authenticate("zhangwei", GOOD_PASSWORD)
    assert caught.value.code == "directory.password_expired"
    fail(service, "zhangwei", "Wrong-Password-1")  # a wrong password still says nothing more
    service.change_password("zhangwei", GOOD_PASSWORD, "Brand-New-Pass-5")
    assert service.authenticate("zhangwei", "Brand-New-Pass-5").password_expires_at is not None
    assert reasons(platform)[0] == "password_expired"


def test_a_hash_with_old_parameters_is_replaced_on_login(service: DirectoryService, platform: Platform) -> None:
    service.hasher = PasswordHasher(Argon2Parameters(time_cost=2, memory_kib=512, parallelism=1))
    before = _stored_hash(platform)
    assert "m=256,t=1" in before
    service.authenticate("zhangwei", GOOD_PASSWORD)
    after = _stored_hash(platform)
    assert "m=512,t=2" in after and after != before
    assert service.authenticate("zhangwei", GOOD_PASSWORD).login == "zhangwei"
    assert audit_records(platform, "directory.authenticate")[0].details["rehashed"] is True


def _stored_hash(platform: Platform) -> str:
    with platform.transaction() as session:
        value = session.scalar(select(UserRow.password_hash).where(UserRow.login == "zhangwei"))
    assert value is not None
    return value


def test_default_parameters_are_owasps_argon2id(tmp_path: Path) -> None:
    platform = open_directory_platform(
        directory_settings(
            tmp_path,
            passwords={
                "argon2_time_cost": 2,
                "argon2_memory_kib": 19456,
                "argon2_parallelism": 1,
            },
        )
    )
    try:
        service = service_of(platform)
        service.create_user(ADMIN, login="zhangwei", display_name="张伟", password=GOOD_PASSWORD)
        assert _stored_hash(platform).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert service.authenticate("zhangwei", GOOD_PASSWORD).login == "zhangwei"
    finally:
        platform.close()
    defaults = PasswordSettings()
    assert (defaults.argon2_time_cost, defaults.argon2_memory_kib, defaults.argon2_parallelism) == (2, 19456, 1)

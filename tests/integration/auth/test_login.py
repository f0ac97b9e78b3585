"""Password login, lockout, TOTP, step-up, built-in roles, separation of duties, the initial administrator."""

from __future__ import annotations

import stat

import pytest
from fastapi import APIRouter
from sqlalchemy import select

from api.auth import Permission, require, require_recent_strong_auth
from api.components.auth import ADMIN_PASSWORD_SECRET
from core.store.models import AuditRecordRow
from directory.auth import SeparationOfDuties
from tests.integration.auth.conftest import PASSWORD, AuthPlatform, code_at, totp_secret


def _without_request_id(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("request_id",)}


def test_lockout_after_the_configured_failures_and_unknown_users_look_the_same(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei")
    wrong = [auth_platform.login("zhangwei", "Wrong-Password-1") for _ in range(3)]  # threshold 3
    assert {(r.status_code, r.json()["code"]) for r in wrong} == {(401, "directory.invalid_credentials")}
    locked = auth_platform.login("zhangwei")  # the 4th attempt: right password, account locked
    assert (locked.status_code, locked.json()["code"]) == (401, "directory.invalid_credentials")
    unknown = auth_platform.login("nobody", "Wrong-Password-1")
    assert _without_request_id(unknown.json()) == _without_request_id(wrong[0].json())
    assert _without_request_id(locked.json()) == _without_request_id(wrong[0].json())
    assert unknown.headers["www-authenticate"] == wrong[0].headers["www-authenticate"]
    with auth_platform.platform.transaction() as session:
        reasons = [r.details for r in session.scalars(
            select(AuditRecordRow).where(AuditRecordRow.action == "directory.authenticate",
                                         AuditRecordRow.outcome == "failure"))]
    assert any('"temporarily_locked"' in d for d in reasons) and any('"unknown_user"' in d for d in reasons)
    auth_platform.clock.advance(seconds=901)
    assert auth_platform.login("zhangwei").status_code == 200


def test_totp_enrolment_and_login_with_a_code(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    headers = auth_platform.bearer("zhangwei")
    enrolled = auth_platform.client.post("/api/v1/auth/totp", headers=headers)
    assert enrolled.status_code == 201
    uri = enrolled.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/Hengxin%3Azhangwei?")
    secret = totp_secret(uri)
    wrong = auth_platform.client.post("/api/v1/auth/totp/verify", json={"code": "000000"}, headers=headers)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "auth.invalid_totp_code")
    clock = auth_platform.clock
    confirmed = auth_platform.client.post("/api/v1/auth/totp/verify", json={"code": code_at(secret, clock())},
                                          headers=headers)
    assert confirmed.status_code == 204
    again = auth_platform.client.post("/api/v1/auth/totp", headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "auth.totp_state")  # the secret is never re-shown

    missing = auth_platform.login("zhangwei")
    assert (missing.status_code, missing.json()["code"]) == (401, "auth.second_factor_required")
    assert missing.json()["methods"] == ["totp"]
    clock.advance(seconds=30)
    code = code_at(secret, clock())
    ok = auth_platform.login("zhangwei", totp=code)
    assert ok.status_code == 200 and ok.json()["amr"] == ["pwd", "otp", "mfa"]
    replayed = auth_platform.login("zhangwei", totp=code)
    assert (replayed.status_code, replayed.json()["code"]) == (401, "directory.invalid_credentials")
    wrong_code = auth_platform.login("zhangwei", totp="123456" if code != "123456" else "654321")
    assert wrong_code.json()["code"] == "directory.invalid_credentials"
    wrong_password = auth_platform.login("zhangwei", "Wrong-Password-1", totp=code_at(secret, clock()))
    assert _without_request_id(wrong_password.json()) == _without_request_id(wrong_code.json())
    # An administrator resets a lost device; then the password alone works again.
    assert auth_platform.client.delete("/api/v1/auth/totp/zhangwei", headers=auth_platform.admin).status_code == 204
    assert auth_platform.login("zhangwei").json()["amr"] == ["pwd"]


def test_step_up_needs_a_recent_strong_authentication(auth_platform: AuthPlatform) -> None:
    probe = APIRouter()

    @probe.post("/test/sign", dependencies=[require(Permission.AUDIT_READ), require_recent_strong_auth(300)])
    def sign() -> dict[str, str]:
        return {"ok": "yes"}

    auth_platform.client.app.include_router(probe)
    auth_platform.person("zhangwei", "auditor")
    weak = auth_platform.client.post("/test/sign", headers=auth_platform.bearer("zhangwei"))
    assert (weak.status_code, weak.json()["code"]) == (401, "auth.step_up_required")
    assert 'error="insufficient_user_authentication"' in weak.headers["www-authenticate"]
    assert weak.json()["max_age"] == 300
    headers = auth_platform.bearer("zhangwei")
    uri = auth_platform.client.post("/api/v1/auth/totp", headers=headers).json()["otpauth_uri"]
    secret = totp_secret(uri)
    auth_platform.client.post("/api/v1/auth/totp/verify", json={"code": code_at(secret, auth_platform.clock())},
                              headers=headers)
    auth_platform.clock.advance(seconds=30)
    strong = auth_platform.login("zhangwei", totp=code_at(secret, auth_platform.clock())).json()
    strong_headers = {"Authorization": f"Bearer {strong['access_token']}"}
    assert auth_platform.client.post("/test/sign", headers=strong_headers).status_code == 200
    auth_platform.clock.advance(seconds=240)  # the access token is still valid, the strong login 270 s old
    assert auth_platform.client.post("/test/sign", headers=strong_headers).status_code == 200
    refreshed = auth_platform.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                                "refresh_token": strong["refresh_token"]}).json()
    auth_platform.clock.advance(seconds=61)  # a refresh does not renew auth_time
    late = auth_platform.client.post("/test/sign", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    assert late.json()["code"] == "auth.step_up_required", late.text
    token_caller = auth_platform.client.post("/test/sign", headers=auth_platform.admin)
    assert (token_caller.status_code, token_caller.json()["code"]) == (403, "auth.forbidden")


def test_builtin_roles_and_separation_of_duties(auth_platform: AuthPlatform) -> None:
    roles = {r["name"] for r in auth_platform.client.get("/api/v1/roles", params={"limit": 100},
                                                         headers=auth_platform.admin).json()["items"]}
    assert {"system-administrator", "security-administrator", "audit-administrator", "certificate-operator",
            "security-officer", "auditor", "application"} <= roles
    auth_platform.person("li", "system-administrator")
    with auth_platform.platform.transaction() as session:
        before = len(list(session.scalars(select(AuditRecordRow.sequence))))
    for role in ("security-administrator", "audit-administrator"):
        refused = auth_platform.client.post("/api/v1/users/li/roles", json={"role": role},
                                            headers=auth_platform.admin)
        assert (refused.status_code, refused.json()["code"]) == (409, "auth.separation_of_duties")
        assert refused.json()["held"] == ["system-administrator"]
    with auth_platform.platform.transaction() as session:
        assert len(list(session.scalars(select(AuditRecordRow.sequence)))) == before  # nothing written
    with pytest.raises(SeparationOfDuties):
        auth_platform.directory.grant_role("test", "li", "audit-administrator", department=None)
    # Other roles combine freely; the same administrator role again is idempotent.
    assert auth_platform.client.post("/api/v1/users/li/roles", json={"role": "auditor"},
                                     headers=auth_platform.admin).status_code in (200, 201)
    assert auth_platform.client.post("/api/v1/users/li/roles", json={"role": "system-administrator"},
                                     headers=auth_platform.admin).status_code in (200, 201)
    # The system administrator's JWT carries the role's permissions: it manages users, not the audit log.
    headers = auth_platform.bearer("li")
    assert auth_platform.client.get("/api/v1/users", headers=headers).status_code == 200
    assert auth_platform.client.post("/api/v1/audit/verify", headers=headers).status_code == 403
    # A revoked role takes effect at once, without a new login.
    auth_platform.directory.revoke_role("test", "li", "system-administrator")
    assert auth_platform.client.get("/api/v1/users", headers=headers).status_code == 403


def test_initial_administrator_logs_in_with_the_generated_password(auth_platform: AuthPlatform) -> None:
    secrets = auth_platform.platform.secrets
    reference = secrets.reference(ADMIN_PASSWORD_SECRET)
    assert reference is not None and stat.S_IMODE(reference.stat().st_mode) == 0o600
    response = auth_platform.login("admin", secrets.get(ADMIN_PASSWORD_SECRET))
    assert response.status_code == 200
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert auth_platform.client.get("/api/v1/users", headers=headers).status_code == 200
    # The bootstrap API token (break glass) keeps working.
    assert auth_platform.client.get("/api/v1/audit", headers=auth_platform.admin).status_code == 200
    assert PASSWORD not in secrets.get(ADMIN_PASSWORD_SECRET)


def test_disabled_user_tokens_stop_working(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    headers = auth_platform.bearer("zhangwei")
    auth_platform.directory.disable_user("test", "zhangwei")
    assert auth_platform.client.get("/api/v1/audit", headers=headers).status_code == 401


def test_break_glass_token_is_revocable_and_audited(auth_platform: AuthPlatform) -> None:
    auth_platform.person("wang", "security-administrator")
    headers = auth_platform.bearer("wang")
    assert auth_platform.client.get("/api/v1/audit", headers=auth_platform.admin).status_code == 200
    assert auth_platform.client.delete("/api/v1/auth/api-tokens/bootstrap-admin", headers=headers).status_code == 204
    assert auth_platform.client.get("/api/v1/audit", headers=auth_platform.admin).status_code == 401
    missing = auth_platform.client.delete("/api/v1/auth/api-tokens/nothing", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "tokens.not_found")
    with auth_platform.platform.transaction() as session:
        record = session.scalars(select(AuditRecordRow).where(AuditRecordRow.action == "token.revoke")).one()
    assert (record.actor, record.target) == ("user:wang", "token:bootstrap-admin")


def test_an_api_token_cannot_enrol_a_second_factor(auth_platform: AuthPlatform) -> None:
    # API tokens and services are not people: a clean 403, never a server error.
    for path, body in (("/api/v1/auth/totp", None), ("/api/v1/auth/totp/verify", {"code": "123456"})):
        response = auth_platform.client.post(path, headers=auth_platform.admin, json=body)
        assert (response.status_code, response.json()["code"]) == (403, "auth.forbidden"), path

"""Access and refresh tokens: verified by a generic JWT library from the JWKS, expiry, tampering, rotation,
refresh rotation with reuse detection, revocation, introspection, client credentials."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from sqlalchemy import select

from core.store.models import AuditRecordRow
from tests.integration.auth.conftest import AuthPlatform


def _verify_with_jwks(auth_platform: AuthPlatform, token: str) -> dict:
    """Verification nobody here wrote: PyJWK from the published JWKS, then jwt.decode."""
    jwks = auth_platform.client.get("/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    metadata = auth_platform.client.get("/.well-known/oauth-authorization-server").json()
    return jwt.decode(token, key.key, algorithms=["ES256"], audience="hengxin", issuer=metadata["issuer"],
                      options={"verify_exp": False})


def _introspect(auth_platform: AuthPlatform, token: str) -> dict:
    response = auth_platform.client.post("/oauth/introspect", data={"token": token}, headers=auth_platform.admin)
    assert response.status_code == 200
    return response.json()


def test_access_token_verifies_with_the_published_jwks(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    body = auth_platform.login("zhangwei").json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    claims = _verify_with_jwks(auth_platform, body["access_token"])
    assert claims["sub"] == "zhangwei" and claims["amr"] == ["pwd"] and claims["exp"] - claims["iat"] == 300
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert auth_platform.client.get("/api/v1/audit", headers=headers).status_code == 200  # auditor
    denied = auth_platform.client.get("/api/v1/users", headers=headers)
    assert (denied.status_code, denied.json()["code"]) == (403, "auth.forbidden")
    assert _introspect(auth_platform, body["access_token"])["active"] is True


def test_expired_and_tampered_tokens_are_refused(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    token = auth_platform.login("zhangwei").json()["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    for bad in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{signature[:-4]}AAAA"):
        response = auth_platform.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {bad}"})
        assert (response.status_code, response.json()["code"]) == (401, "auth.unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
    auth_platform.clock.advance(seconds=301)
    expired = auth_platform.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {token}"})
    assert (expired.status_code, expired.json()["code"]) == (401, "auth.unauthenticated")
    assert _introspect(auth_platform, token) == {"active": False}


def test_refresh_rotates_and_reuse_revokes_the_session(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    first = auth_platform.login("zhangwei").json()
    second = auth_platform.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                             "refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.headers["cache-control"] == "no-store"
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"]
    assert _introspect(auth_platform, first["refresh_token"]) == {"active": False}
    assert _introspect(auth_platform, second_body["refresh_token"])["active"] is True
    # The spent token again: somebody has a copy.  The whole session ends.
    reuse = auth_platform.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                            "refresh_token": first["refresh_token"]})
    assert (reuse.status_code, reuse.json()["code"], reuse.json()["error"]) == (400, "auth.invalid_grant",
                                                                                 "invalid_grant")
    assert _introspect(auth_platform, second_body["refresh_token"]) == {"active": False}
    headers = {"Authorization": f"Bearer {second_body['access_token']}"}
    assert auth_platform.client.get("/api/v1/audit", headers=headers).status_code == 401
    alerts = [a.name for a in auth_platform.platform.alerts.history]
    assert "auth.refresh_token_reuse" in alerts


def test_revoked_tokens_are_refused_and_introspect_inactive(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    body = auth_platform.login("zhangwei").json()
    assert auth_platform.client.post("/oauth/revoke", data={"token": body["refresh_token"]}).status_code == 200
    assert _introspect(auth_platform, body["refresh_token"]) == {"active": False}
    assert _introspect(auth_platform, body["access_token"]) == {"active": False}
    response = auth_platform.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status_code == 401
    refresh = auth_platform.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                              "refresh_token": body["refresh_token"]})
    assert refresh.json()["code"] == "auth.invalid_grant"
    # Unknown tokens are accepted silently (RFC 7009 §2.2).
    assert auth_platform.client.post("/oauth/revoke", data={"token": "hxr_nothing"}).status_code == 200
    # Logout ends the session of the access token used.
    other = auth_platform.login("zhangwei").json()
    headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert auth_platform.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert auth_platform.client.get("/api/v1/audit", headers=headers).status_code == 401
    with auth_platform.platform.transaction() as session:
        actions = list(session.scalars(select(AuditRecordRow.action).where(AuditRecordRow.action.like("auth.%"))))
    assert actions.count("auth.login") == 2 and actions.count("auth.token.revoke") == 2


def test_idle_and_absolute_session_timeouts(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    body = auth_platform.login("zhangwei").json()
    auth_platform.clock.advance(minutes=31)  # idle timeout 30 min
    idle = auth_platform.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                           "refresh_token": body["refresh_token"]})
    assert idle.json()["code"] == "auth.invalid_grant"
    token = auth_platform.login("zhangwei").json()["refresh_token"]
    for _ in range(17):  # keep it busy: refresh every 29 minutes, 8 h absolute limit
        auth_platform.clock.advance(minutes=29)
        response = auth_platform.client.post("/oauth/token", data={"grant_type": "refresh_token",
                                                                   "refresh_token": token})
        if response.status_code != 200:
            break
        token = response.json()["refresh_token"]
    assert response.json()["code"] == "auth.invalid_grant"
    assert auth_platform.auth.settings.session_absolute_hours * 60 // 29 == 16


def test_client_credentials_for_a_service_account(auth_platform: AuthPlatform) -> None:
    auth_platform.directory.create_user("test", login="svc-oa", display_name="OA", kind="service")
    auth_platform.directory.grant_role("test", "svc-oa", "application")
    person = auth_platform.client.post("/api/v1/auth/clients/admin/secret", headers=auth_platform.admin)
    assert (person.status_code, person.json()["code"]) == (409, "auth.not_a_service_account")
    created = auth_platform.client.post("/api/v1/auth/clients/svc-oa/secret", headers=auth_platform.admin)
    assert created.status_code == 201
    secret = created.json()["client_secret"]
    assert len(secret) >= 43
    basic = base64.b64encode(f"svc-oa:{secret}".encode()).decode()
    issued = auth_platform.client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                       headers={"Authorization": f"Basic {basic}"})
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert "refresh_token" not in body
    claims = _verify_with_jwks(auth_platform, body["access_token"])
    assert claims["sub"] == claims["client_id"] == "svc-oa" and claims["kind"] == "service"
    service_headers = {"Authorization": f"Bearer {body['access_token']}"}
    # The application role may introspect: a relying application checks a user's token.
    assert auth_platform.client.post("/oauth/introspect", data={"token": body["access_token"]},
                                     headers=service_headers).json()["active"] is True
    posted = auth_platform.client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                             "client_id": "svc-oa", "client_secret": secret})
    assert posted.status_code == 200
    for client_id, wrong in (("svc-oa", secret[:-2] + "xx"), ("nobody", secret)):
        refused = auth_platform.client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                                  "client_id": client_id, "client_secret": wrong})
        assert (refused.status_code, refused.json()["code"], refused.json()["error"]) == (
            401, "auth.invalid_client", "invalid_client")
    password_grant = auth_platform.client.post("/oauth/token", data={"grant_type": "password", "username": "admin",
                                                                     "password": "x"})
    assert (password_grant.status_code, password_grant.json()["error"]) == (400, "unsupported_grant_type")
    with auth_platform.platform.transaction() as session:
        outcomes = list(session.scalars(select(AuditRecordRow.outcome).where(
            AuditRecordRow.action == "auth.token.issue")))
    assert outcomes == ["success", "success", "failure", "failure"]


def test_key_rotation_keeps_the_previous_key_published_and_accepted(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    old = auth_platform.login("zhangwei").json()["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    rotated = auth_platform.client.post("/api/v1/auth/keys/rotate", headers=auth_platform.admin)
    assert rotated.status_code == 200 and rotated.json()["kid"] != old_kid
    kids = [k["kid"] for k in auth_platform.client.get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [rotated.json()["kid"], old_kid]
    new = auth_platform.login("zhangwei").json()["access_token"]
    assert jwt.get_unverified_header(new)["kid"] == rotated.json()["kid"]
    for token in (old, new):
        _verify_with_jwks(auth_platform, token)
        assert auth_platform.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {token}"}).status_code \
            == 200
    auth_platform.client.post("/api/v1/auth/keys/rotate", headers=auth_platform.admin)
    gone = auth_platform.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {old}"})
    assert gone.status_code == 401  # two rotations later the old key is retired


def test_metadata_describes_the_endpoints(auth_platform: AuthPlatform) -> None:
    metadata = auth_platform.client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["grant_types_supported"] == ["client_credentials", "refresh_token"]
    assert metadata["token_endpoint"].endswith("/oauth/token")
    assert metadata["jwks_uri"] == metadata["issuer"] + "/.well-known/jwks.json"


def test_introspection_is_inactive_while_the_account_cannot_log_in(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    body = auth_platform.login("zhangwei").json()
    assert _introspect(auth_platform, body["access_token"])["active"] is True
    auth_platform.directory.disable_user("test", "zhangwei")
    # A relying party that introspects must not accept a disabled person's unexpired token.
    assert _introspect(auth_platform, body["access_token"]) == {"active": False}
    assert _introspect(auth_platform, body["refresh_token"]) == {"active": False}
    response = auth_platform.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (response.status_code, response.json()["code"]) == (401, "auth.unauthenticated")
    auth_platform.directory.enable_user("test", "zhangwei")
    assert _introspect(auth_platform, body["access_token"])["active"] is True
    auth_platform.directory.lock_user("test", "zhangwei")
    assert _introspect(auth_platform, body["access_token"]) == {"active": False}


def test_a_token_used_before_is_still_refused_once_it_expires(auth_platform: AuthPlatform) -> None:
    # The verified-signature cache must not outlive the token: expiry is checked against the clock every time.
    auth_platform.person("zhangwei", "auditor")
    token = auth_platform.login("zhangwei").json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert auth_platform.client.get("/api/v1/audit", headers=headers).status_code == 200
    assert _introspect(auth_platform, token)["active"] is True
    auth_platform.clock.advance(seconds=301)
    assert auth_platform.client.get("/api/v1/audit", headers=headers).status_code == 401
    assert _introspect(auth_platform, token) == {"active": False}


def test_a_password_login_commits_its_session_and_both_audit_records_together(auth_platform: AuthPlatform) -> None:
    auth_platform.person("zhangwei", "auditor")
    body = auth_platform.login("zhangwei").json()
    with auth_platform.platform.transaction() as session:
        records = list(session.execute(
            select(AuditRecordRow.sequence, AuditRecordRow.action, AuditRecordRow.outcome, AuditRecordRow.details)
            .order_by(AuditRecordRow.sequence.desc()).limit(2)
        ))
    (login_sequence, login_action, login_outcome, login_details), (check_sequence, check_action, check_outcome, _) = (
        records)
    assert (check_action, check_outcome, login_action, login_outcome) == (
        "directory.authenticate", "success", "auth.login", "success")
    assert login_sequence == check_sequence + 1
    assert json.loads(login_details)["session"] == body["session_id"]
    introspected = _introspect(auth_platform, body["refresh_token"])
    assert introspected["active"] is True and introspected["sid"] == body["session_id"]
    assert auth_platform.directory.get_user("zhangwei").last_login_at == auth_platform.clock()


def test_authorisation_reads_the_current_roles_and_account(auth_platform: AuthPlatform) -> None:
    from directory.tokens import InvalidAccessToken

    auth_platform.person("zhangwei", "auditor", "certificate-operator")
    token = auth_platform.login("zhangwei").json()["access_token"]
    authorized = auth_platform.auth.authorize_access_token(token)
    assert (authorized.access.login, authorized.kind) == ("zhangwei", "person")
    assert [a.role for a in authorized.assignments] == ["auditor", "certificate-operator"]
    assert authorized.assignments[0].permissions == ("audit.read",)
    assert {"audit.read", "certificates.issue"} <= authorized.permissions
    assert [a.role for a in authorized.assignments] == [
        a.role for a in auth_platform.directory.role_assignments("zhangwei")]
    auth_platform.directory.revoke_role("test", "zhangwei", "auditor")
    assert "audit.read" not in auth_platform.auth.authorize_access_token(token).permissions
    auth_platform.directory.disable_user("test", "zhangwei")
    with pytest.raises(InvalidAccessToken, match="account_unusable"):
        auth_platform.auth.authorize_access_token(token)


def test_the_sqlite_reader_authorises_exactly_as_a_session_does(auth_platform: AuthPlatform) -> None:
    """On SQLite, token checks read through core.store.SQLiteReader; every answer must equal the Session path's."""
    from directory.tokens import InvalidAccessToken

    service = auth_platform.auth
    reader = service._reader
    assert reader is not None

    def both(token: str) -> tuple[object, object]:
        answers = []
        for path in (reader, None):
            service._reader = path
            try:
                answers.append((service.authorize_access_token(token), service.verify_access_token(token)))
            except InvalidAccessToken as refused:
                answers.append(str(refused))
            finally:
                service._reader = reader
        return answers[0], answers[1]

    auth_platform.person("zhangwei", "auditor", "certificate-operator")
    body = auth_platform.login("zhangwei").json()
    token = body["access_token"]
    mine, theirs = both(token)
    assert mine == theirs and not isinstance(mine, str)
    auth_platform.directory.revoke_role("test", "zhangwei", "auditor")
    mine, theirs = both(token)
    assert mine == theirs and [a.role for a in mine[0].assignments] == ["certificate-operator"]
    second = auth_platform.login("zhangwei").json()
    service.logout(second["session_id"], "test")
    assert both(second["access_token"]) == ("session_revoked", "session_revoked")
    third = auth_platform.login("zhangwei").json()
    auth_platform.directory.disable_user("test", "zhangwei")
    assert both(third["access_token"]) == ("account_unusable", "account_unusable")

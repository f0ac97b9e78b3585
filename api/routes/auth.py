"""Login, logout, second factors, and the OAuth 2.0 endpoints (token, introspection, revocation, metadata).

Logins and the token endpoint are public (the credential is in the request);
everything else declares a permission.  Responses carrying tokens are sent
with ``Cache-Control: no-store`` (RFC 6749 §5.1).  OAuth errors are problem
documents with an extra ``error`` member holding the RFC 6749 error code.
"""

from __future__ import annotations

import base64
import binascii
import logging
import urllib.parse
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Form, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.auth import Permission, Principal, client_address, current_principal, platform_of, require
from api.errors import Forbidden, Unauthenticated
from api.middleware import TrustedProxies
from core.errors import NotFound
from core.store.models import APITokenRow
from directory.auth import AuthService, InvalidClient, TokenSet, UnsupportedGrantType
from directory.service_errors import InvalidCredentials

log = logging.getLogger("hengxin.auth")

router = APIRouter(tags=["auth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SELF: list[Any] = [require(Permission.ACCOUNT_SELF)]
MANAGE: list[Any] = [require(Permission.DIRECTORY_MANAGE)]
TOKENS: list[Any] = [require(Permission.TOKENS_MANAGE)]
INTROSPECT: list[Any] = [require(Permission.TOKENS_INTROSPECT)]


def _service(request: Request) -> AuthService:
    service: AuthService = platform_of(request).services["auth"]
    return service


def _tokens_out(tokens: TokenSet) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
    }
    if tokens.refresh_token is not None:
        body["refresh_token"] = tokens.refresh_token
        body["session_id"] = tokens.session_id
        body["amr"] = list(tokens.claims.get("amr", []))
    return body


def _json(body: dict[str, Any], status: int = 200) -> Response:
    import json

    return Response(
        json.dumps(body, ensure_ascii=False), status_code=status, media_type="application/json", headers=NO_STORE
    )


# -- login ---------------------------------------------------------------------------------------------


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(..., min_length=1, max_length=200)
    password: str = Field(..., min_length=1, max_length=1024)
    totp: str | None = Field(None, max_length=10, description="The one-time code, when the account has one.")


def _proxy_certificate(request: Request) -> bytes | None:
    """The client certificate passed by a trusted TLS proxy (URL-escaped PEM), as DER; None otherwise."""
    settings = platform_of(request).settings
    header = request.headers.get(settings.auth.client_certificate_header)
    if not header:
        return None
    peer = (request.scope.get("client") or ("", 0))[0]
    if not TrustedProxies(settings.server.trusted_proxies).trusts(peer):
        log.warning("client certificate header from an untrusted peer ignored", extra={"peer": peer})
        return None
    try:
        pem = urllib.parse.unquote(header).encode("ascii")
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    except (ValueError, UnicodeEncodeError):
        raise InvalidCredentials() from None


@router.post("/api/v1/auth/login", summary="Log in with a password (+ one-time code) or a client certificate")
def login(request: Request, body: LoginBody | None = None) -> Response:
    """With a JSON body: password login (``totp`` too when the account has a second factor).  Without one:
    certificate login, from the certificate a trusted TLS proxy forwarded.  Every failure is 401
    ``directory.invalid_credentials``; a right password without the needed code is 401
    ``auth.second_factor_required``."""
    service = _service(request)
    source = client_address(request)
    if body is not None:
        tokens = service.login_password(body.login, body.password, body.totp, source)
        return _json(_tokens_out(tokens))
    certificate = _proxy_certificate(request)
    if certificate is None:
        raise Unauthenticated(
            "send a login and password, or a client certificate", detail_zh="请提供用户名和密码或客户端证书"
        )
    return _json(_tokens_out(service.login_certificate(certificate, source)))


@router.post(
    "/api/v1/auth/logout",
    status_code=204,
    dependencies=SELF,
    summary="End the caller's session (its refresh and access tokens)",
)
def logout(request: Request) -> Response:
    principal = current_principal(request)
    if principal.session_id:
        _service(request).logout(principal.session_id, client_address(request))
    return Response(status_code=204)


# -- second factor --------------------------------------------------------------------------------------


class CodeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(..., min_length=6, max_length=10)


def _person(request: Request) -> Principal:
    """The calling person; API tokens and service accounts have no second factor to manage."""
    principal = current_principal(request)
    if principal.kind != "user":
        raise Forbidden("only a person logged in as themself can manage their second factor",
                        detail_zh="只有本人登录后才能管理自己的第二认证因素")
    return principal


@router.post("/api/v1/auth/totp", dependencies=SELF, summary="Start TOTP enrolment")
def enrol_totp(request: Request) -> Response:
    """The secret is returned only here, inside the ``otpauth://`` URI (show it as a QR code)."""
    principal = _person(request)
    uri = _service(request).enrol_totp(principal.name, source=client_address(request))
    return _json({"otpauth_uri": uri}, 201)


@router.post(
    "/api/v1/auth/totp/verify",
    status_code=204,
    dependencies=SELF,
    summary="Confirm TOTP enrolment with a code",
)
def confirm_totp(body: CodeBody, request: Request) -> Response:
    principal = _person(request)
    _service(request).confirm_totp(principal.name, body.code, source=client_address(request))
    return Response(status_code=204)


@router.delete(
    "/api/v1/auth/totp/{login}",
    status_code=204,
    dependencies=MANAGE,
    summary="Remove a user's second factor (lost device)",
)
def reset_totp(login: str, request: Request) -> Response:
    principal = current_principal(request)
    _service(request).reset_totp(principal.actor, login, source=client_address(request))
    return Response(status_code=204)


@router.delete(
    "/api/v1/auth/sessions/{login}",
    dependencies=MANAGE,
    summary="End every session of a user",
)
def revoke_sessions(login: str, request: Request) -> dict[str, int]:
    principal = current_principal(request)
    return {"revoked": _service(request).revoke_sessions(principal.actor, login, source=client_address(request))}


@router.post(
    "/api/v1/auth/clients/{login}/secret",
    dependencies=TOKENS,
    status_code=201,
    summary="Create (or replace) a service account's client secret; shown once",
)
def create_client_secret(login: str, request: Request) -> Response:
    principal = current_principal(request)
    secret = _service(request).create_client_secret(principal.actor, login, source=client_address(request))
    return _json({"client_id": login.strip().lower(), "client_secret": secret}, 201)


@router.post(
    "/api/v1/auth/keys/rotate",
    dependencies=TOKENS,
    summary="Rotate the access-token signing key (the previous key stays valid until the next rotation)",
)
def rotate_key(request: Request) -> dict[str, str]:
    principal = current_principal(request)
    return {"kid": _service(request).rotate_signing_key(principal.actor, source=client_address(request))}


@router.delete(
    "/api/v1/auth/api-tokens/{name}",
    status_code=204,
    dependencies=TOKENS,
    summary="Revoke an API token (e.g. the break-glass bootstrap-admin token after use)",
)
def revoke_api_token(name: str, request: Request) -> Response:
    """Marks the token revoked (it is kept for the audit trail); 404 ``tokens.not_found`` if there is none."""
    principal = current_principal(request)
    platform = platform_of(request)
    with platform.transaction() as session:
        row = session.scalar(select(APITokenRow).where(APITokenRow.name == name))
        if row is None:
            raise TokenNotFound(f"no API token named {name!r}", detail_zh=f"令牌 {name!r} 不存在")
        if not row.revoked:
            row.revoked = True
            platform.require_audit().append(
                session, actor=principal.actor, action="token.revoke", target=f"token:{name}",
                source=client_address(request),
            )
    return Response(status_code=204)


class TokenNotFound(NotFound):
    code = "tokens.not_found"
    title_en = "No such token"
    title_zh = "令牌不存在"


# -- OAuth 2.0 ----------------------------------------------------------------------------------------------


def _basic_client(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


@router.post("/oauth/token", summary="OAuth 2.0 token endpoint: client_credentials and refresh_token grants")
def token(
    request: Request,
    grant_type: str = Form(...),
    refresh_token: str | None = Form(None),
    client_id: str | None = Form(None),
    client_secret: str | None = Form(None),
    scope: str | None = Form(None),
) -> Response:
    service = _service(request)
    source = client_address(request)
    if grant_type == "refresh_token":
        if not refresh_token:
            raise UnsupportedGrantType("refresh_token is required", error="invalid_request")
        return _json(_tokens_out(service.refresh(refresh_token, source)))
    if grant_type == "client_credentials":
        credentials = _basic_client(request) or (
            (client_id, client_secret) if client_id and client_secret else None
        )
        if credentials is None:
            raise InvalidClient("client authentication is required", detail_zh="需要客户端认证", error="invalid_client",
                                _headers={"WWW-Authenticate": 'Basic realm="hengxin"'})
        return _json(_tokens_out(service.client_credentials(credentials[0], credentials[1], source)))
    raise UnsupportedGrantType(
        f"grant type {grant_type[:50]!r} is not supported; use client_credentials or refresh_token",
        detail_zh="不支持该授权类型", error="unsupported_grant_type",
    )


@router.post(
    "/oauth/introspect",
    dependencies=INTROSPECT,
    summary="RFC 7662 token introspection",
)
def introspect(request: Request, token: str = Form(...), token_type_hint: str | None = Form(None)) -> Response:
    return _json(_service(request).introspect(token))


@router.post(
    "/oauth/revoke",
    summary="RFC 7009 token revocation",
    response_class=Response,
    responses={200: {"description": "Always 200 with an empty body (RFC 7009 section 2.2)", "content": {}}},
)
def revoke(request: Request, token: str = Form(...), token_type_hint: str | None = Form(None)) -> Response:
    """Always 200, also for tokens that are unknown or already revoked (RFC 7009 §2.2)."""
    _service(request).revoke(token, client_address(request), token_type_hint=token_type_hint)
    return Response(status_code=200, headers=NO_STORE)


@router.get("/.well-known/jwks.json", summary="The public keys access tokens are signed with")
def jwks(request: Request) -> Response:
    import json

    body = _service(request).keys.jwks()
    return Response(json.dumps(body), media_type="application/json", headers={"Cache-Control": "max-age=300"})


@router.get("/.well-known/oauth-authorization-server", summary="RFC 8414 authorization server metadata")
def metadata(request: Request) -> dict[str, Any]:
    service = _service(request)
    issuer = service.keys.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "grant_types_supported": ["client_credentials", "refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
    }

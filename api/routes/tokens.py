"""API bearer tokens (bootstrap authentication until user login lands)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import Permission, current_principal, platform_of, require
from api.platform import create_api_token
from core.errors import InvalidInput

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    name: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._@-]+$")
    permissions: list[str] = Field(..., min_length=1, max_length=50)


class TokenCreated(BaseModel):
    name: str
    permissions: list[str]
    token: str = Field(..., description="Shown once; only its hash is stored.")


@router.post(
    "",
    status_code=201,
    dependencies=[require(Permission.TOKENS_MANAGE)],
    response_model=TokenCreated,
    summary="Create an API token",
)
def create_token(body: TokenCreate, request: Request) -> TokenCreated:
    known = {p.value for p in Permission} | {"*"}
    unknown = [p for p in body.permissions if p not in known]
    if unknown:
        raise InvalidInput(f"unknown permissions: {', '.join(unknown)}", detail_zh="未知权限", unknown=unknown)
    platform = platform_of(request)
    principal = current_principal(request)
    token = create_api_token(platform, body.name, " ".join(body.permissions), actor=principal.actor)
    return TokenCreated(name=body.name, permissions=body.permissions, token=token)

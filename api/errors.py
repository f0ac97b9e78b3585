"""RFC 9457 problem documents: one status table, one renderer, the handlers.

Every error response of the API is ``application/problem+json`` with a stable
English ``code``, a ``title`` and ``detail`` in Chinese or English (by
``Accept-Language``, default from config), the ``status`` and the request id.
A 5xx body says only "internal error" and the request id; the cause is logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from core.errors import Category, HengxinError

log = logging.getLogger("hengxin.api")

PROBLEM_TYPE_BASE = "https://hengxin.invalid/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

STATUS: dict[Category, int] = {
    Category.INVALID: 400,
    Category.UNAUTHENTICATED: 401,
    Category.FORBIDDEN: 403,
    Category.NOT_FOUND: 404,
    Category.CONFLICT: 409,
    Category.TOO_LARGE: 413,
    Category.UNSUPPORTED_MEDIA: 415,
    Category.RATE_LIMITED: 429,
    Category.CONFIGURATION: 500,
    Category.INTERNAL: 500,
    Category.UNAVAILABLE: 503,
}


# -- errors that only the HTTP layer raises ------------------------------------------------


class Unauthenticated(HengxinError):
    code = "auth.unauthenticated"
    category = Category.UNAUTHENTICATED
    title_en = "Authentication required"
    title_zh = "需要身份认证"


class Forbidden(HengxinError):
    code = "auth.forbidden"
    category = Category.FORBIDDEN
    title_en = "Permission denied"
    title_zh = "权限不足"


class MalformedJSON(HengxinError):
    code = "request.malformed_json"
    category = Category.INVALID
    title_en = "The request body is not valid JSON"
    title_zh = "请求体不是有效的 JSON"


class ValidationFailed(HengxinError):
    code = "request.validation_failed"
    category = Category.INVALID
    title_en = "The request is not valid"
    title_zh = "请求参数无效"


class BodyTooLarge(HengxinError):
    code = "request.body_too_large"
    category = Category.TOO_LARGE
    title_en = "The request body is too large"
    title_zh = "请求体过大"


class UnsupportedMediaType(HengxinError):
    code = "request.unsupported_media_type"
    category = Category.UNSUPPORTED_MEDIA
    title_en = "Unsupported content type"
    title_zh = "不支持的内容类型"


class RateLimited(HengxinError):
    code = "request.rate_limited"
    category = Category.RATE_LIMITED
    title_en = "Too many requests"
    title_zh = "请求过于频繁"


class RequestTimeout(HengxinError):
    code = "request.timeout"
    category = Category.UNAVAILABLE
    title_en = "The request took too long"
    title_zh = "请求超时"


class RouteNotFound(HengxinError):
    code = "request.route_not_found"
    category = Category.NOT_FOUND
    title_en = "No such resource"
    title_zh = "资源不存在"


class MethodNotAllowed(HengxinError):
    code = "request.method_not_allowed"
    category = Category.INVALID
    title_en = "Method not allowed"
    title_zh = "不允许的请求方法"


# -- language ---------------------------------------------------------------------------------


def choose_language(accept_language: str | None, default: str) -> str:
    """'zh-CN' or 'en' from an Accept-Language header (q-values honoured), else ``default``."""
    if not accept_language:
        return default
    best: tuple[float, str] | None = None
    for position, part in enumerate(accept_language.split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.startswith("zh"):
            language = "zh-CN"
        elif tag.startswith("en"):
            language = "en"
        else:
            continue
        key = (quality, -position)
        if quality > 0 and (best is None or key > (best[0], 0)):
            best = (quality, language)
    return best[1] if best else default


# -- rendering ------------------------------------------------------------------------------


def problem_document(error: HengxinError, *, language: str, request_id: str, instance: str = "") -> dict[str, Any]:
    status = STATUS[error.category]
    if status >= 500 and error.category is not Category.UNAVAILABLE:
        # Never reveal internals; the log has the cause under the same request id.
        generic = InternalServerProblem()
        document: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + generic.code,
            "code": generic.code,
            "title": generic.title(language),
            "status": status,
            "detail": "内部错误" if language.startswith("zh") else "internal error",
            "request_id": request_id,
        }
        return document
    document = {
        "type": PROBLEM_TYPE_BASE + error.code,
        "code": error.code,
        "title": error.title(language),
        "status": status,
        "detail": error.localized_detail(language),
        "request_id": request_id,
    }
    if instance:
        document["instance"] = instance
    for key, value in error.extra.items():
        if key not in document:
            document[key] = value
    return document


class InternalServerProblem(HengxinError):
    code = "internal.error"
    title_en = "Internal error"
    title_zh = "内部错误"


def problem_response(
    error: HengxinError,
    *,
    language: str,
    request_id: str,
    instance: str = "",
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> Response:
    """The problem+json response for ``error``; ``status`` overrides the category's status (405)."""
    document = problem_document(error, language=language, request_id=request_id, instance=instance)
    if status is not None:
        document["status"] = status
    all_headers = {"X-Request-ID": request_id, **(headers or {})}
    if error.category is Category.UNAUTHENTICATED:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="hengxin"')
    return Response(
        content=json.dumps(document, ensure_ascii=False).encode("utf-8"),
        status_code=document["status"],
        media_type=PROBLEM_MEDIA_TYPE,
        headers=all_headers,
    )


def request_language(request: Request) -> str:
    default = getattr(request.app.state, "default_language", "zh-CN")
    return choose_language(request.headers.get("accept-language"), default)


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "")) or "-"


def render(
    request: Request, error: HengxinError, headers: dict[str, str] | None = None, *, status: int | None = None
) -> Response:
    return problem_response(
        error,
        language=request_language(request),
        request_id=request_id_of(request),
        instance=request.url.path,
        headers=headers,
        status=status,
    )


# -- handlers -------------------------------------------------------------------------------


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HengxinError)
    async def _hengxin(request: Request, error: HengxinError) -> Response:
        if STATUS[error.category] >= 500:
            log.error(
                "request failed: %s",
                error.detail,
                extra={"code": error.code, "request_id": request_id_of(request)},
                exc_info=error.__cause__ is not None,
            )
        headers = error.extra.get("_headers") if isinstance(error.extra.get("_headers"), dict) else None
        error.extra.pop("_headers", None)
        return render(request, error, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> Response:
        problems = []
        for item in error.errors():
            if item.get("type") == "json_invalid":
                return render(
                    request, MalformedJSON("the request body is not valid JSON", detail_zh="请求体不是有效的 JSON")
                )
            problems.append(
                {
                    "location": ".".join(str(p) for p in item.get("loc", ())),
                    "message": str(item.get("msg", "")),
                    "type": str(item.get("type", "")),
                }
            )
        where = ", ".join(p["location"] for p in problems[:5])
        return render(
            request,
            ValidationFailed(f"invalid fields: {where}", detail_zh=f"无效字段：{where}", errors=problems),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        mapped: HengxinError
        if isinstance(error.__cause__, HengxinError):
            # Raised while FastAPI read the body (the body size limit): report the real cause.
            return render(request, error.__cause__)
        if error.status_code == 404:
            mapped = RouteNotFound(f"no resource at {request.url.path}")
        elif error.status_code == 405:
            mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
            allow = (error.headers or {}).get("Allow")
            return render(request, mapped, {"Allow": allow} if allow else None, status=405)
        elif error.status_code == 413:
            mapped = BodyTooLarge(str(error.detail))
        else:
            mapped = ValidationFailed(str(error.detail))
        return render(request, mapped)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error", extra={"request_id": request_id_of(request)})
        return render(request, InternalServerProblem("internal error"))

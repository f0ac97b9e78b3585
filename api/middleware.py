"""ASGI middleware: request ids and access log, body size limits, rate limits, request timeouts, and the
protocol dispatcher.

Written as plain ASGI callables rather than Starlette's BaseHTTPMiddleware,
which buffers and costs a task per request.  Each limit answers with a
problem document and never reaches the route.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from api.errors import BodyTooLarge, RateLimited, RequestTimeout, choose_language, problem_response
from core.errors import HengxinError

log = logging.getLogger("hengxin.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# A protocol endpoint answers a request from the ASGI scope and returns True, or returns False having read
# and sent nothing, leaving the request to the routes.
ProtocolHandler = Callable[[Scope, Receive, Send], Awaitable[bool]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# Set in the request's state by RequestContextMiddleware (the outermost) when the response has started: a limit
# that trips after that cannot answer with a problem document any more.
RESPONSE_STARTED = "response_started"


def _response_started(scope: Scope) -> bool:
    return bool(scope.get("state", {}).get(RESPONSE_STARTED, False))


async def read_body(receive: Receive) -> bytes:
    """The whole request body from ASGI ``receive`` (the body limit, outside, stops an oversized one)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_problem(
    scope: Scope, send: Send, error: HengxinError, default_language: str, headers: dict[str, str] | None = None
) -> None:
    request_id = scope.get("state", {}).get("request_id", "-")
    language = choose_language(_header(scope, b"accept-language"), default_language)
    response = problem_response(
        error, language=language, request_id=request_id, instance=scope.get("path", ""), headers=headers
    )

    async def _no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, _no_body, send)


class TrustedProxies:
    """Which peers may tell us the client's address (X-Forwarded-For) and certificate."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_address(self, scope: Scope) -> str:
        peer = (scope.get("client") or ("", 0))[0]
        if self.trusts(peer):
            forwarded = _header(scope, b"x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[-1].strip()
        return peer or "unknown"


class RequestContextMiddleware:
    """Assign a request id, resolve the client address, and write one access log line per request."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = _header(scope, b"x-request-id")
        request_id = supplied if supplied and _REQUEST_ID.match(supplied) else secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_address"] = self.proxies.client_address(scope)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                state[RESPONSE_STARTED] = True  # the inner limits read this instead of wrapping send again
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(key.lower() == b"x-request-id" for key, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": state["client_address"],
                },
            )


class BodyLimitMiddleware:
    """Refuse bodies larger than the limit (by Content-Length, or while streaming) with 413."""

    def __init__(
        self, app: ASGIApp, limit: int, upload_limit: int, upload_prefixes: tuple[str, ...], default_language: str
    ) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit
        self.upload_prefixes = upload_prefixes
        self.default_language = default_language

    def _limit_for(self, path: str) -> int:
        return self.upload_limit if path.startswith(self.upload_prefixes) else self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope.get("path", ""))
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False
            if too_large:
                await _send_problem(
                    scope,
                    send,
                    BodyTooLarge(f"the body exceeds {limit} bytes", detail_zh=f"请求体超过 {limit} 字节", limit=limit),
                    self.default_language,
                    {"Connection": "close"},
                )
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI wraps errors raised while it reads a body in a 400; the
                    # problem handler unwraps this one (see api/errors.py).
                    raise BodyTooLarge(
                        f"the body exceeds {limit} bytes", detail_zh=f"请求体超过 {limit} 字节", limit=limit
                    )
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge as error:
            if not _response_started(scope):
                await _send_problem(scope, send, error, self.default_language, {"Connection": "close"})


class RateLimitMiddleware:
    """A token bucket per client address; 429 with Retry-After when empty.

    The buckets live in this process: with several nodes each enforces its own
    share.  Health probes are not limited.
    """

    EXEMPT = ("/healthz", "/readyz")

    def __init__(self, app: ASGIApp, per_minute: int, burst: int, default_language: str) -> None:
        self.app = app
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.default_language = default_language
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _take(self, key: str) -> float:
        """0 when allowed, else seconds until a token is available."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > 100_000:
                    self._buckets.clear()
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or scope.get("path", "") in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        client = scope.get("state", {}).get("client_address", "unknown")
        wait = self._take(client)
        if wait > 0:
            retry = max(1, int(wait + 0.999))
            await _send_problem(
                scope,
                send,
                RateLimited(
                    f"too many requests from {client}; retry in {retry} s",
                    detail_zh=f"请求过于频繁，请 {retry} 秒后重试",
                    retry_after=retry,
                ),
                self.default_language,
                {"Retry-After": str(retry)},
            )
            return
        await self.app(scope, receive, send)


class TimeoutMiddleware:
    """Give up on a request that takes longer than the limit (503 if nothing was sent yet)."""

    def __init__(self, app: ASGIApp, seconds: float, default_language: str) -> None:
        self.app = app
        self.seconds = seconds
        self.default_language = default_language

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            # A timeout context, not wait_for: no extra task per request.
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, send)
        except TimeoutError:
            log.warning(
                "request timed out",
                extra={"path": scope.get("path"), "request_id": scope.get("state", {}).get("request_id")},
            )
            if not _response_started(scope):
                await _send_problem(
                    scope,
                    send,
                    RequestTimeout(f"the request did not finish within {self.seconds:g} s"),
                    self.default_language,
                )


class ProtocolDispatch:
    """Hand the protocol hot paths (OCSP, RFC 3161) to plain ASGI handlers ahead of FastAPI's router.

    Innermost of the middleware, so request ids, the access log, timeouts, rate and body limits apply to
    these requests as to every other.  ``tables`` map ``(method, path)`` to a handler; a path ending in
    ``/`` matches every path below it.  The tables are copied when the middleware stack is built (at the
    application's first request or start-up).  A handler that declines (returns False) has read nothing,
    and the request goes on to the routes, which answer it with their problem documents.
    """

    def __init__(self, app: ASGIApp, tables: Iterable[Mapping[tuple[str, str], ProtocolHandler]]) -> None:
        self.app = app
        self.exact: dict[tuple[str, str], ProtocolHandler] = {}
        self.prefixes: list[tuple[str, str, ProtocolHandler]] = []
        for table in tables:
            for (method, path), handler in table.items():
                key = (method.upper(), path)
                if key in self.exact or any((m, p) == key for m, p, _ in self.prefixes):
                    raise ValueError(f"two protocol handlers for {key[0]} {path}")
                if path.endswith("/"):
                    self.prefixes.append((key[0], path, handler))
                else:
                    self.exact[key] = handler

    def handler_for(self, method: str, path: str) -> ProtocolHandler | None:
        handler = self.exact.get((method, path))
        if handler is None:
            for prefix_method, prefix, candidate in self.prefixes:
                if method == prefix_method and path.startswith(prefix):
                    return candidate
        return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.handler_for(scope["method"], scope["path"])
            if handler is not None and await handler(scope, receive, send):
                return
        await self.app(scope, receive, send)

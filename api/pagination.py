"""Cursor pagination, the same on every list: ``?limit=&cursor=`` in, ``{"items", "next_cursor"}`` out.

A cursor is an opaque, URL-safe token holding the last key seen; clients pass
it back unchanged.  Keys are ordered and unique, so pages never skip or repeat
rows when new ones are added meanwhile.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from core.errors import InvalidInput

T = TypeVar("T")

MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams:
    def __init__(
        self,
        limit: int = Query(50, ge=1, le=MAX_LIMIT, description="Items per page."),
        cursor: str | None = Query(None, max_length=500, description="Opaque cursor from next_cursor."),
    ) -> None:
        self.limit = limit
        self.cursor = cursor

    def after(self) -> Any:
        return decode_cursor(self.cursor) if self.cursor else None


def encode_cursor(key: Any) -> str:
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "the cursor is not valid; use next_cursor from a previous page", detail_zh="分页游标无效"
        ) from None


def page_of(items: list[T], limit: int, key_of: Any) -> Page[T]:
    """Build a page from up to ``limit + 1`` fetched items (the extra one tells whether more exist)."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items=items, next_cursor=encode_cursor(key_of(items[-1])) if more and items else None)

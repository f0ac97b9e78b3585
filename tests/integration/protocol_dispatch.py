"""A test client of the application with a chosen protocol-dispatch table, for the protocol endpoint tests.

The application's :class:`api.middleware.ProtocolDispatch` copies each component's table when the middleware
stack is built (when the client starts); ``client_with`` swaps the contents of a module's table for that
moment only, so one platform can be served with the fast handlers and with the routes alone, side by side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.middleware import ProtocolDispatch
from api.platform import Platform


@contextlib.contextmanager
def client_with(
    platform: Platform,
    table: MutableMapping[tuple[str, str], Any],
    endpoints: dict[tuple[str, str], Any],
    *,
    raise_server_exceptions: bool = True,
) -> Iterator[TestClient]:
    """A client whose application dispatches ``endpoints`` in place of ``table`` (none: only the routes)."""
    saved = dict(table)
    table.clear()
    table.update(endpoints)
    try:
        app = create_app(platform.settings, platform)
        assert [m.cls for m in app.user_middleware][-1] is ProtocolDispatch  # innermost
        with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:  # the table is copied here
            table.clear()
            table.update(saved)
            yield client
    finally:
        table.clear()
        table.update(saved)

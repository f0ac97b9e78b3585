"""The API answers as its OpenAPI document says: schemathesis against the app, in-process, as the administrator.

Every operation in ``/openapi.json`` gets generated requests (derandomised,
a few examples each) sent with the bootstrap administrator's token.  Two
checks apply to every answer: no 5xx (``not_a_server_error``) and the body
matches the schema declared for its status code and media type
(``response_schema_conformance``).

The default suite covers the read routes (GET), which are safe to call in any
order.  ``HENGXIN_SCHEMA_METHODS=all`` (the ``make fuzz`` target) runs every
operation, writes included, and ``HENGXIN_SCHEMA_EXAMPLES`` raises the number of
examples per operation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from api.platform import ADMIN_TOKEN_SECRET, Platform, initialise, open_platform
from tests.helpers import make_settings

METHODS = os.environ.get("HENGXIN_SCHEMA_METHODS", "get").lower()
EXAMPLES = int(os.environ.get("HENGXIN_SCHEMA_EXAMPLES", "10"))
CHECKS = [not_a_server_error, response_schema_conformance]
BINARY_PROTOCOL_PATHS = ("/tsa",)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    settings_ = make_settings(tmp_path_factory.mktemp("schema") / "var")
    initialise(settings_)
    opened = open_platform(settings_)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def api_schema(platform: Platform) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(platform.settings, platform))
    # Binary protocol bodies (RFC 3161 queries) have no serializer in schemathesis; test_fuzz_http.py
    # fuzzes them instead.
    schema = schema.exclude(path=list(BINARY_PROTOCOL_PATHS))
    if METHODS != "all":
        schema = schema.include(method=[m.upper() for m in METHODS.split(",")])
    return schema


@pytest.fixture(scope="module")
def admin_headers(platform: Platform) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.secrets.get(ADMIN_TOKEN_SECRET)}"}


def _run_operation(operation: Any, headers: dict[str, str]) -> str | None:
    """Run the generated cases of one operation; the first failure, described, or None."""

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        run()
    except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - every failure is reported, by operation
        return f"{operation.method.upper()} {operation.path}: {type(error).__name__}: {str(error)[:1500]}"
    return None


@pytest.mark.slow
def test_every_answer_is_not_5xx_and_matches_its_declared_schema(api_schema: Any,
                                                                  admin_headers: dict[str, str]) -> None:
    """One hypothesis run per operation (schemathesis's pytest plugin does not support pytest 9 yet)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 10, [f"{o.method} {o.path}" for o in operations]
    failures = [failure for operation in operations if (failure := _run_operation(operation, admin_headers))]
    assert not failures, "\n\n".join(failures)

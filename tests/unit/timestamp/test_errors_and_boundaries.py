"""The error hierarchy of the timestamp package and its import boundaries."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import timestamp.errors as errors_module
from core.errors import Category, HengxinError
from timestamp.errors import TimestampError

PACKAGE = Path(__file__).resolve().parents[3] / "timestamp"
FORBIDDEN = {"ca", "directory", "signing", "api", "backup", "dr", "fastapi", "typer", "starlette", "sqlalchemy"}


def _errors() -> list[type[TimestampError]]:
    return [
        c
        for _, c in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(c, TimestampError) and c.__module__ == errors_module.__name__
    ]


def test_every_error_is_a_timestamp_error_with_a_unique_code_and_both_titles() -> None:
    errors = _errors()
    codes = [e.code for e in errors]

    assert TimestampError.code == "timestamp.error"
    assert issubclass(TimestampError, HengxinError)
    assert len(codes) == len(set(codes))
    for error in errors:
        assert error.code.startswith("timestamp.")
        assert isinstance(error.category, Category)
        assert error.title_en and error.title_zh and error.title_en != error.title_zh
        assert error.__doc__


def test_error_carries_detail_in_both_languages_and_extras() -> None:
    error = errors_module.TimestampNotGranted("rejected", detail_zh="被拒绝", status="rejection")
    assert error.localized_detail("zh-CN") == "被拒绝"
    assert error.localized_detail("en") == "rejected"
    assert error.extra == {"status": "rejection"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


# The service layer (records in the database, audit) may use SQLAlchemy and core;
# the protocol core (everything else) is pure.
SERVICE_MODULES = {"models.py", "service.py", "service_errors.py"}


def _pure_modules() -> list[Path]:
    return [path for path in PACKAGE.glob("*.py") if path.name not in SERVICE_MODULES]


def test_timestamp_imports_no_sibling_domain_and_no_web_or_cli_framework() -> None:
    for path in PACKAGE.glob("*.py"):
        forbidden = FORBIDDEN - {"sqlalchemy"} if path.name in SERVICE_MODULES else FORBIDDEN
        assert not (_imports(path) & forbidden), path.name


def test_only_the_clock_module_imports_ntplib() -> None:
    users = {path.name for path in PACKAGE.glob("*.py") if "ntplib" in _imports(path)}
    assert users == {"clock.py"}


def test_core_imports_are_limited_to_errors() -> None:
    for path in _pure_modules():
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert {m for m in modules if m.split(".")[0] == "core"} <= {"core.errors"}, path.name

"""Domain components wired into the platform, the HTTP app and the CLI.

Each domain package has one composition module here (``api/components/ca.py``
...) that may define any of:

- ``MIGRATIONS: Path`` — the package's alembic folder (a branch depending on ``core_0001``);
- ``def open_hook(platform: Platform) -> None`` — build the domain's services into ``platform.services``;
- ``def init_hook(platform: Platform, details: dict) -> dict`` — first-time set-up run by ``hengxin init``;
- ``def router() -> APIRouter`` — the domain's routes (each declaring its permission);
- ``cli: typer.Typer`` and ``CLI_NAME: str`` — the domain's command group (``hengxin ca ...``).

Order matters where one component uses another's services (open hooks run in
this order).  Only this package imports across domain packages.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMPONENT_MODULES: list[str] = [
    "api.components.ca",
    "api.components.timestamp",
    "api.components.backup",
    "api.components.directory",
    "api.components.auth",
    "api.components.ra",
    "api.components.signing",
    "api.components.dr",
]


def components() -> list[ModuleType]:
    return [importlib.import_module(name) for name in COMPONENT_MODULES]

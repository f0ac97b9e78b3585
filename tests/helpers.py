"""Shared test helpers: building settings and platforms quickly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import Settings, resolve_paths

# scrypt at 2^14 keeps tests fast; the production default (2^17) has its own test.
FAST_KEYS = {"scrypt_log2_n": 14}


def make_settings(data_dir: Path, database_url: str = "", **sections: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "instance": {"data_dir": str(data_dir)},
        "keys": dict(FAST_KEYS),
        "database": {"url": database_url},
        "server": {"rate_limit_per_minute": 0},
        # Tests start from an empty directory; the initial administrator has its own tests.
        "auth": {"initial_admin_login": ""},
    }
    for name, section in sections.items():
        values[name] = {**values.get(name, {}), **section}
    return resolve_paths(Settings(**values), data_dir)

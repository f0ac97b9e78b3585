"""The slapd configuration Hengxin ships, and a renderer for its placeholders.

The LDIF files next to this module are meant to be applied by an operator
(see ``README.md`` here) or by deployment tooling.  They contain
``@NAME@`` placeholders; :func:`render_config` fills them in.  The files are
plain text so they can also be filled in with ``sed``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from core.errors import ConfigurationError

CONFIG_DIRECTORY = Path(__file__).resolve().parent

#: Changes to ``cn=config``, applied with ``ldapmodify -Y EXTERNAL -H ldapi:///`` in this order.
CONFIG_FILES: tuple[str, ...] = ("10-modules.ldif", "20-ppolicy-overlay.ldif", "30-acl.ldif")
#: Entries in the published tree, added with ``ldapadd`` as the rootdn, in this order.
DATA_FILES: tuple[str, ...] = ("40-policies.ldif", "50-sync-identity.ldif")
#: Optional TLS configuration (``cn=config``).
TLS_FILE = "60-tls.ldif"

#: Values used when the caller does not give one.  ``SYNC_DN`` defaults to
#: ``cn=<SYNC_CN>,<BASE_DN>``.
DEFAULTS: Mapping[str, str] = {
    "MODULE_LIST_DN": "cn=module{0},cn=config",
    "DATABASE_DN": "olcDatabase={1}mdb,cn=config",
    "SYNC_CN": "hengxin-sync",
    "LOCKOUT_MAX_FAILURES": "5",
    "LOCKOUT_DURATION": "900",
}

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def config_path(name: str) -> Path:
    """Return the path of a shipped file.

    Raises ``ConfigurationError`` when no file of that name is shipped.
    """
    path = CONFIG_DIRECTORY / name
    if path.parent != CONFIG_DIRECTORY or not path.is_file():
        raise ConfigurationError(f"no shipped slapd configuration file named {name!r}")
    return path


def render_config(name: str, **values: object) -> str:
    """Return the shipped file ``name`` with every ``@NAME@`` placeholder filled in.

    ``values`` are keyed by placeholder name (``BASE_DN="dc=gov,dc=example"``);
    :data:`DEFAULTS` fill the rest.  Values must be single-line: a newline
    would inject LDIF.

    Raises ``ConfigurationError`` when a placeholder has no value, a value
    contains a line break, or the file does not exist.
    """
    text = config_path(name).read_text(encoding="utf-8")
    merged: dict[str, str] = dict(DEFAULTS)
    merged.update({key: str(value) for key, value in values.items()})
    if "SYNC_DN" not in merged and "BASE_DN" in merged:
        merged["SYNC_DN"] = f"cn={merged['SYNC_CN']},{merged['BASE_DN']}"
    for key, value in merged.items():
        if "\n" in value or "\r" in value:
            raise ConfigurationError(f"the value for {key} must be a single line")

    missing = sorted({match.group(1) for match in _PLACEHOLDER.finditer(text)} - merged.keys())
    if missing:
        raise ConfigurationError(f"{name} needs values for: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: merged[match.group(1)], text)

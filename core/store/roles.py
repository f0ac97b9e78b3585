"""PostgreSQL privileges: the application's role may not change or remove audit rows."""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

from core.errors import ConfigurationError, InvalidInput

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
APPEND_ONLY_TABLES = ("audit_records", "audit_checkpoints", "audit_segments")


def grant_application_role(engine: Engine, role: str) -> None:
    """Grant ``role`` full use of every table except SELECT/INSERT only on the audit tables.

    Run as the schema owner after each migration (``hengxin db grant-app-role``).
    """
    if engine.dialect.name != "postgresql":
        raise ConfigurationError("database roles exist only on PostgreSQL")
    if not _ROLE.match(role):
        raise InvalidInput(f"invalid role name {role!r}")
    with engine.begin() as connection:
        connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        connection.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'))
        connection.execute(text(f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
        for table in APPEND_ONLY_TABLES:
            connection.execute(text(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM "{role}"'))
        connection.execute(text(f'REVOKE ALL ON alembic_version FROM "{role}"'))
        connection.execute(text(f'GRANT SELECT ON alembic_version TO "{role}"'))

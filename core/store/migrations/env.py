"""Alembic environment: migrations always run on a connection handed in by core.store.migrate()."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI, which we do not use
    raise RuntimeError("run migrations through `hengxin db upgrade`, not the alembic command")

context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

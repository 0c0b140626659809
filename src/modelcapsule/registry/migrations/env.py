"""Alembic environment of the registry: runs on the connection handed over by
:func:`modelcapsule.registry.migrate.upgrade` (``config.attributes["connection"]``), never from a URL in a file."""

from __future__ import annotations

from alembic import context

from modelcapsule.registry.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True, compare_server_default=False)
with context.begin_transaction():
    context.run_migrations()

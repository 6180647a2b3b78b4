"""Alembic environment: runs on the connection jobpulse hands it (see storage.migrate)."""

from __future__ import annotations

from alembic import context

from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=dialect_of(connection).alters_by_copy,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

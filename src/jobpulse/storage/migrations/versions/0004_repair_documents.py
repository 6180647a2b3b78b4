"""Repair JSON stored before the JSON policy (SQLite): NaN and ±Infinity become null.

SQLite kept them as the non-JSON tokens `NaN` and `Infinity`, which its JSON functions
refuse, so one such row failed every metadata filter of its organization and every claim
of the outbox. PostgreSQL's jsonb never accepted them: nothing to do there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from jobpulse.documents import loads, repaired
from jobpulse.storage.dialects import dialect_of

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The JSON columns: (table, key column, JSON column).
_DOCUMENTS = (
    ("jobs", "id", "metadata"),
    ("job_steps", "id", "metadata"),
    ("outbox", "id", "payload"),
)


def upgrade() -> None:
    connection = op.get_bind()
    for table, key, column in _DOCUMENTS:
        broken = dialect_of(connection).unreadable_json(connection, table, key, column)
        for row_key, text in broken:
            try:
                value = repaired(loads(text))
            except (ValueError, RecursionError):
                value = {}
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :value WHERE {key} = :key"),
                {"value": json.dumps(value, allow_nan=False), "key": row_key},
            )


def downgrade() -> None:
    """Nothing to undo: the repaired values were never valid JSON."""

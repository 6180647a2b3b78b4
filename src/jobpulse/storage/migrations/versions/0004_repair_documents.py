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

from alembic import op

from jobpulse.documents import loads, repaired

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
    if connection.dialect.name != "sqlite":
        return
    for table, key, column in _DOCUMENTS:
        broken = connection.exec_driver_sql(
            f"SELECT {key}, {column} FROM {table} WHERE json_valid({column}) = 0"
        ).all()
        for row_key, text in broken:
            try:
                value = repaired(loads(text))
            except (ValueError, RecursionError):
                value = {}
            connection.exec_driver_sql(
                f"UPDATE {table} SET {column} = ? WHERE {key} = ?",
                (json.dumps(value, allow_nan=False), row_key),
            )


def downgrade() -> None:
    """Nothing to undo: the repaired values were never valid JSON."""

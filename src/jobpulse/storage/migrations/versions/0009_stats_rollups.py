"""Rollups for /v1/stats: the deltas table, the triggers on `jobs` that fill it (a row with
a job's old and new counted fields), and the rollups table the fold sums the deltas into
(see storage/rollups.py). Where a statement of ours costs less than a trigger, it writes
the deltas itself (storage/changes.py): new jobs' everywhere (an insert trigger cost
SQLite's creations 13 % of their rate), changed jobs' on PostgreSQL (a row trigger cost its
batches of transitions 15 %). So the triggers are for deletes, and for updates on SQLite
(5 % there, where one more statement from Python cost 14 %). The jobs already stored are
entered as deltas, folded by the first `serve`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.tables import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: A job's fields the rollups count by that never change, and those that may.
_FIXED = ("organization_id", "job_type", "created_at")
_CHANGING = ("status", "stop_reason", "completed_at", "ttft_ns", "total_duration_ns")
_COLUMNS = ", ".join(
    (*_FIXED, *(f"{side}_{name}" for side in ("old", "new") for name in _CHANGING))
)


#: A deleted job's delta: its counted fields as old values, no new ones.
_DELETED = ", ".join(
    (*(f"OLD.{name}" for name in (*_FIXED, *_CHANGING)), *["NULL"] * len(_CHANGING))
)
_INSERT_DELETED = f"INSERT INTO job_rollup_deltas ({_COLUMNS}) VALUES ({_DELETED});"
#: An updated job's delta (SQLite), and when it has one: a counted field changed.
_UPDATED = ", ".join(
    (
        *(f"NEW.{name}" for name in _FIXED),
        *(f"OLD.{name}" for name in _CHANGING),
        *(f"NEW.{name}" for name in _CHANGING),
    )
)
_CHANGED = " OR ".join(f"OLD.{name} IS NOT NEW.{name}" for name in _CHANGING)
_INSERT_UPDATED = f"INSERT INTO job_rollup_deltas ({_COLUMNS}) VALUES ({_UPDATED});"


def upgrade() -> None:
    op.create_table(
        "job_rollup_deltas",
        # No key and no index, so that inserts stay cheap.
        sa.Column("organization_id", sa.String(128), nullable=False),
        sa.Column("job_type", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        *(
            column
            for side in ("old", "new")
            for column in (
                sa.Column(f"{side}_status", sa.String(16)),
                sa.Column(f"{side}_stop_reason", sa.String(64)),
                sa.Column(f"{side}_completed_at", UTCDateTime()),
                sa.Column(f"{side}_ttft_ns", sa.BigInteger()),
                sa.Column(f"{side}_total_duration_ns", sa.BigInteger()),
            )
        ),
    )
    op.create_table(
        "job_rollups",
        sa.Column("organization_id", sa.String(128), primary_key=True),
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("facet", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("job_type", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("stop_reason", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    triggers = dialect_of(op.get_bind()).rollup_triggers(_INSERT_DELETED, _INSERT_UPDATED, _CHANGED)
    for statement in triggers:
        op.execute(statement)
    fields = ", ".join((*_FIXED, *(["NULL"] * len(_CHANGING)), *_CHANGING))
    op.execute(f"INSERT INTO job_rollup_deltas ({_COLUMNS}) SELECT {fields} FROM jobs")


def downgrade() -> None:
    for statement in dialect_of(op.get_bind()).drop_rollup_triggers():
        op.execute(statement)
    op.drop_table("job_rollups")
    op.drop_table("job_rollup_deltas")

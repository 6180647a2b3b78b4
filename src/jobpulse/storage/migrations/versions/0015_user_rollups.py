"""Rollups by user: `user_rollups` (the counts of `job_rollups` for each user of an
organization, folded from the same deltas), so that a member's /v1/stats reads whole hours
rather than scanning every job of the member. Each delta now names its job's user, and the
triggers of migration 0009 are made again to write it. The table starts from the jobs as
they are; the deltas written before (no user) are folded into `job_rollups` alone.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage import rollups
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.tables import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_CHANGING = ("status", "stop_reason", "completed_at", "ttft_ns", "total_duration_ns")


def _triggers(fixed: tuple[str, ...]) -> tuple[str, str, str]:
    """The statements of the rollup triggers (as migration 0009 made them) writing `fixed`
    as a delta's fields that never change: a deleted job's delta, an updated one's, and the
    condition that a counted field changed.
    """
    columns = ", ".join(
        (*fixed, *(f"{side}_{name}" for side in ("old", "new") for name in _CHANGING))
    )
    deleted = ", ".join(
        (*(f"OLD.{name}" for name in (*fixed, *_CHANGING)), *["NULL"] * len(_CHANGING))
    )
    updated = ", ".join(
        (
            *(f"NEW.{name}" for name in fixed),
            *(f"OLD.{name}" for name in _CHANGING),
            *(f"NEW.{name}" for name in _CHANGING),
        )
    )
    changed = " OR ".join(f"OLD.{name} IS NOT NEW.{name}" for name in _CHANGING)
    return (
        f"INSERT INTO job_rollup_deltas ({columns}) VALUES ({deleted});",
        f"INSERT INTO job_rollup_deltas ({columns}) VALUES ({updated});",
        changed,
    )


def _remake_triggers(fixed: tuple[str, ...]) -> None:
    dialect = dialect_of(op.get_bind())
    for statement in dialect.drop_rollup_triggers():
        op.execute(statement)
    for statement in dialect.rollup_triggers(*_triggers(fixed)):
        op.execute(statement)


def upgrade() -> None:
    op.add_column("job_rollup_deltas", sa.Column("user_id", sa.String(128)))
    op.create_table(
        "user_rollups",
        sa.Column("organization_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("facet", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("job_type", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("stop_reason", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    _remake_triggers(("organization_id", "user_id", "job_type", "created_at"))
    table = sa.table("user_rollups", *(sa.column(name) for name in rollups.USER_COLUMNS))
    every_job = rollups.users_of_jobs(dialect_of(op.get_bind()))
    op.execute(table.insert().from_select(list(rollups.USER_COLUMNS), every_job))


def downgrade() -> None:
    _remake_triggers(("organization_id", "job_type", "created_at"))
    op.drop_table("user_rollups")
    with op.batch_alter_table("job_rollup_deltas") as table:
        table.drop_column("user_id")

"""The index the sweeper finds the jobs it watches for heartbeats by: running jobs with a
`heartbeat_timeout_s`. Without it every sweep read every job (37 ms on PostgreSQL and 63 ms
in SQLite's one writer at 360,000 jobs, every 5 s, growing with the table).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_WHERE = sa.text("heartbeat_timeout_s IS NOT NULL AND completed_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_jobs_watched", "jobs", ["status"], sqlite_where=_WHERE, postgresql_where=_WHERE
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_watched", table_name="jobs")

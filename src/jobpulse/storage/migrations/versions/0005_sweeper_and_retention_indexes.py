"""Indexes for the sweeper and retention: active jobs by status and last change (stale
jobs), ended jobs by end, finished outbox messages by age (prune).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


#: (name, table, columns, partial index condition)
_INDEXES = (
    ("ix_jobs_active_updated", "jobs", ["status", "updated_at"], "completed_at IS NULL"),
    ("ix_jobs_completed", "jobs", ["completed_at"], "completed_at IS NOT NULL"),
    ("ix_outbox_finished", "outbox", ["created_at"], "state != 'pending'"),
)


def upgrade() -> None:
    for name, table, columns, where in _INDEXES:
        condition = sa.text(where)
        op.create_index(name, table, columns, sqlite_where=condition, postgresql_where=condition)


def downgrade() -> None:
    for name, table, _columns, _where in _INDEXES:
        op.drop_index(name, table_name=table)

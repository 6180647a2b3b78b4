"""A job's own stale limit (`stale_after_s`), with the index the sweeper finds such jobs by.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WHERE = sa.text("stale_after_s IS NOT NULL AND completed_at IS NULL")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("stale_after_s", sa.Float(), nullable=True))
    op.create_index(
        "ix_jobs_stale_after",
        "jobs",
        ["updated_at"],
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_stale_after", table_name="jobs")
    op.drop_column("jobs", "stale_after_s")

"""LLM usage: a record per call (`llm_usage`) and the totals on each job (`jobs.usage`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.tables import Json, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: The summed columns of a usage rollup row.
_SUMMED = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_pusd",
    "unpriced",
    "timed_output_tokens",
    "timed_ns",
)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("usage", Json(), nullable=True))
    op.create_table(
        "llm_usage",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("organization_id", sa.String(128), nullable=False),
        sa.Column("job_type", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_pusd", sa.BigInteger(), nullable=True),
        sa.Column("cost_source", sa.String(16), nullable=True),
        sa.Column("ttft_ns", sa.BigInteger(), nullable=True),
        sa.Column("duration_ns", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_llm_usage_job_id_recorded_at", "llm_usage", ["job_id", "recorded_at"])
    op.create_index(
        "ix_llm_usage_organization_id_recorded_at",
        "llm_usage",
        ["organization_id", "recorded_at"],
    )
    op.create_table(
        "llm_usage_rollups",
        sa.Column("organization_id", sa.String(128), primary_key=True),
        sa.Column("facet", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("job_type", sa.String(128), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("bucket", sa.SmallInteger(), primary_key=True, autoincrement=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMMED),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("llm_usage_rollups")
    op.drop_table("llm_usage")
    op.drop_column("jobs", "usage")

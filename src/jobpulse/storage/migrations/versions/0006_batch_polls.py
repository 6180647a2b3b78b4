"""The provider batches `llm_batch` jobs follow (the LLM batch poller's work list).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_polls",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.String(length=255), nullable=False),
        sa.Column("next_poll_at", UTCDateTime(), nullable=False),
        sa.Column("polled_at", UTCDateTime(), nullable=True),
        sa.Column("not_found_since", UTCDateTime(), nullable=True),
        sa.Column("cancel_sent_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_batch_polls_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_batch_polls")),
    )
    op.create_index("ix_batch_polls_next_poll_at", "batch_polls", ["next_poll_at"])
    # Batches registered before the poller existed are followed from now on.
    op.execute(
        """
        INSERT INTO batch_polls (job_id, organization_id, provider, batch_id, next_poll_at)
        SELECT id, organization_id, metadata ->> 'provider', metadata ->> 'batch_id', created_at
        FROM jobs
        WHERE job_type = 'llm_batch' AND completed_at IS NULL
          AND metadata ->> 'provider' IN ('anthropic', 'openai')
          AND length(metadata ->> 'batch_id') BETWEEN 1 AND 255
        """
    )


def downgrade() -> None:
    op.drop_index("ix_batch_polls_next_poll_at", table_name="batch_polls")
    op.drop_table("batch_polls")

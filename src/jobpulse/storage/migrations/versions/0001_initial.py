"""Jobs, their history, API keys and the webhook outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.tables import Json, Serial, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("organization_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("job_type", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stop_reason", sa.String(length=64), nullable=True),
        sa.Column("background", sa.Boolean(), nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("callback_sent_at", UTCDateTime(), nullable=True),
        sa.Column("callback_status_code", sa.Integer(), nullable=True),
        sa.Column("callback_error", sa.Text(), nullable=True),
        sa.Column("ttft_ns", sa.BigInteger(), nullable=True),
        sa.Column("total_duration_ns", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("deadline_at", UTCDateTime(), nullable=True),
        sa.Column("heartbeat_timeout_s", sa.Float(), nullable=True),
        sa.Column("stuck_since", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('created', 'pending', 'running', "
            "'completed', 'failed', 'cancelled', 'expired')",
            name=op.f("ck_jobs_status"),
        ),
        sa.CheckConstraint("ttft_ns >= 0 AND total_duration_ns >= 0", name=op.f("ck_jobs_timings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        "ix_jobs_deadline",
        "jobs",
        ["deadline_at"],
        unique=False,
        sqlite_where=sa.text("deadline_at IS NOT NULL AND completed_at IS NULL"),
        postgresql_where=sa.text("deadline_at IS NOT NULL AND completed_at IS NULL"),
    )
    op.create_index("ix_jobs_org", "jobs", ["organization_id", "created_at", "id"], unique=False)
    op.create_index(
        "ix_jobs_org_source",
        "jobs",
        ["organization_id", "source_id", "created_at", "id"],
        unique=False,
        sqlite_where=sa.text("source_id IS NOT NULL"),
        postgresql_where=sa.text("source_id IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_org_status",
        "jobs",
        ["organization_id", "status", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_jobs_org_stuck",
        "jobs",
        ["organization_id", "created_at", "id"],
        unique=False,
        sqlite_where=sa.text("stuck_since IS NOT NULL"),
        postgresql_where=sa.text("stuck_since IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_org_type",
        "jobs",
        ["organization_id", "job_type", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_jobs_org_user", "jobs", ["organization_id", "user_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_jobs_org_user_status",
        "jobs",
        ["organization_id", "user_id", "status", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "uq_jobs_idempotency",
        "jobs",
        ["organization_id", "user_id", "idempotency_key"],
        unique=True,
    )

    op.create_table(
        "outbox",
        sa.Column("id", Serial, autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("trace_context", Json, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_outbox_webhook_id")),
    )
    op.create_index(
        "ix_outbox_due",
        "outbox",
        ["next_attempt_at"],
        unique=False,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index("ix_outbox_job_id", "outbox", ["job_id"], unique=False)

    op.create_table(
        "job_events",
        sa.Column("id", Serial, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("stop_reason", sa.String(length=64), nullable=True),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_events_job_id", table_name="job_events")

    op.drop_table("job_events")
    op.drop_index("ix_outbox_job_id", table_name="outbox")
    op.drop_index(
        "ix_outbox_due",
        table_name="outbox",
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )

    op.drop_table("outbox")
    op.drop_index("uq_jobs_idempotency", table_name="jobs")
    op.drop_index("ix_jobs_org_user_status", table_name="jobs")
    op.drop_index("ix_jobs_org_user", table_name="jobs")
    op.drop_index("ix_jobs_org_type", table_name="jobs")
    op.drop_index(
        "ix_jobs_org_stuck",
        table_name="jobs",
        sqlite_where=sa.text("stuck_since IS NOT NULL"),
        postgresql_where=sa.text("stuck_since IS NOT NULL"),
    )
    op.drop_index("ix_jobs_org_status", table_name="jobs")
    op.drop_index(
        "ix_jobs_org_source",
        table_name="jobs",
        sqlite_where=sa.text("source_id IS NOT NULL"),
        postgresql_where=sa.text("source_id IS NOT NULL"),
    )
    op.drop_index("ix_jobs_org", table_name="jobs")
    op.drop_index(
        "ix_jobs_deadline",
        table_name="jobs",
        sqlite_where=sa.text("deadline_at IS NOT NULL AND completed_at IS NULL"),
        postgresql_where=sa.text("deadline_at IS NOT NULL AND completed_at IS NULL"),
    )

    op.drop_table("jobs")
    op.drop_table("api_keys")

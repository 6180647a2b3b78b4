"""Alert rules and their episodes (alerts/).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.tables import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("organization_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("window_s", sa.Float(), nullable=False),
        sa.Column("above", sa.Float(), nullable=False),
        sa.Column("min_jobs", sa.Integer(), nullable=False),
        sa.Column("job_type", sa.String(128)),
        sa.Column("model", sa.String(255)),
        sa.Column("user_id", sa.String(128)),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_evaluation_at", UTCDateTime(), nullable=False),
        sa.Column("evaluated_at", UTCDateTime()),
        sa.Column("last_value", sa.Float()),
        sa.Column("firing_alert_id", sa.String(64)),
    )
    op.create_index("ix_alert_rules_org", "alert_rules", ["organization_id", "created_at", "id"])
    op.create_index("ix_alert_rules_due", "alert_rules", ["next_evaluation_at"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(128), nullable=False),
        sa.Column("rule_name", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("above", sa.Float(), nullable=False),
        sa.Column("window_s", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.Column("fired_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("resolved_value", sa.Float()),
    )
    op.create_index("ix_alerts_org_fired", "alerts", ["organization_id", "fired_at"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("alert_rules")

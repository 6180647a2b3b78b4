"""Saved views of the jobs page (named filters per user, shareable in the organization), and
the indexes that sort it by duration or time to first token.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.tables import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: The columns the jobs page sorts by, slowest first, and the scopes of their indexes.
SORTED = ("total_duration_ns", "ttft_ns")
SCOPES = (("org", ("organization_id",)), ("org_user", ("organization_id", "user_id")))


def upgrade() -> None:
    op.create_table(
        "saved_views",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
    )
    op.create_index(
        "uq_saved_views_owner_name",
        "saved_views",
        ["organization_id", "user_id", "name"],
        unique=True,
    )
    op.create_index("ix_saved_views_org_shared", "saved_views", ["organization_id", "shared"])
    for column in SORTED:
        for scope, columns in SCOPES:
            op.create_index(
                f"ix_jobs_{scope}_{column}",
                "jobs",
                [*columns, column, "id"],
                sqlite_where=sa.text(f"{column} IS NOT NULL"),
                postgresql_where=sa.text(f"{column} IS NOT NULL"),
            )


def downgrade() -> None:
    for column in SORTED:
        for scope, _columns in SCOPES:
            op.drop_index(f"ix_jobs_{scope}_{column}", table_name="jobs")
    op.drop_index("ix_saved_views_org_shared", table_name="saved_views")
    op.drop_index("uq_saved_views_owner_name", table_name="saved_views")
    op.drop_table("saved_views")

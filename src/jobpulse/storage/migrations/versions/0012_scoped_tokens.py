"""Scoped read-only tokens, stored by the SHA-256 of their secret.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.tables import Json, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scoped_tokens",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("scope", Json, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_scoped_tokens_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoped_tokens")),
    )
    op.create_index("ix_scoped_tokens_expires_at", "scoped_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_scoped_tokens_expires_at", table_name="scoped_tokens")
    op.drop_table("scoped_tokens")

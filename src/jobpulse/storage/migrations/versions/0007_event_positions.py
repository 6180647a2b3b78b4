"""Stream positions for history events: on PostgreSQL, the id of the transaction that wrote
each event (see storage/events.py), indexed with the event id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.dialects import dialect_of

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_WHERE = sa.text("txid IS NOT NULL")


def upgrade() -> None:
    # Nullable, and the default set apart: no table rewrite; events written before stay
    # without a position (they are history, not news).
    op.add_column("job_events", sa.Column("txid", sa.BigInteger(), nullable=True))
    default = dialect_of(op.get_bind()).transaction_id_default
    if default is not None:  # where ids are not in commit order
        op.execute(f"ALTER TABLE job_events ALTER COLUMN txid SET DEFAULT {default}")
    op.create_index(
        "ix_job_events_position",
        "job_events",
        ["txid", "id"],
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_job_events_position", table_name="job_events")
    op.drop_column("job_events", "txid")

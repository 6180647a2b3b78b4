"""Webhook bodies kept as sent: `outbox.body`, the exact JSON text a message is POSTed with,
written with the message, so a delivery neither reads the document nor encodes it again.
Messages written before have none and are encoded from their document as before. The due
messages' index gains the id, the claims' order, so a claim reads only the rows it takes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


_DUE = sa.text("state = 'pending'")


def _due_index(*columns: str) -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index(
        "ix_outbox_due", "outbox", list(columns), sqlite_where=_DUE, postgresql_where=_DUE
    )


def upgrade() -> None:
    op.add_column("outbox", sa.Column("body", sa.Text(), nullable=True))
    _due_index("next_attempt_at", "id")


def downgrade() -> None:
    _due_index("next_attempt_at")
    op.drop_column("outbox", "body")

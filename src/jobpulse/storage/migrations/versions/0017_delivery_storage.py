"""Deliveries write less. On SQLite a batch of delivery attempts is recorded in one
statement: the view `callback_attempt_records`, whose INSTEAD OF trigger keeps each attempt
inserted into it, moves its message on and shows it on its job (storage/sqlite/attempts.py).
On PostgreSQL the outbox's pages keep half their room for the row versions claims write,
so a claim updates no index (storage/postgres/dialect.py).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from jobpulse.storage.dialects import dialect_of

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in dialect_of(op.get_bind()).create_delivery_storage():
        op.execute(statement)


def downgrade() -> None:
    for statement in dialect_of(op.get_bind()).drop_delivery_storage():
        op.execute(statement)

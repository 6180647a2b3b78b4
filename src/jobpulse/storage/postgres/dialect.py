"""How PostgreSQL spells what differs between the databases (see storage/dialects.py)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql.base import PGDialect

from jobpulse.storage import dialects, urls
from jobpulse.storage.postgres.database import PostgresBackend
from jobpulse.storage.postgres.reads import PostgresReads
from jobpulse.storage.postgres.schema import PostgresSchema


class PostgresDialect(PostgresReads, PostgresSchema):
    """PostgreSQL: many replicas, told of each other's commits by NOTIFY."""

    announces = True

    def announce(self, connection: Connection, channel: str, payload: str) -> None:
        """NOTIFY `channel`'s listeners on every replica when this transaction commits."""
        connection.execute(select(func.pg_notify(channel, payload)))


POSTGRES = PostgresDialect()
dialects.register(PGDialect, POSTGRES)

# Connections: the backend of `postgresql://` URLs (storage/urls.py).
urls.register("postgresql", PostgresBackend(POSTGRES))

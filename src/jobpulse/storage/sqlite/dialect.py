"""How SQLite spells what differs between the databases (see storage/dialects.py)."""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from jobpulse.storage import dialects, urls
from jobpulse.storage.sqlite.database import SqliteBackend
from jobpulse.storage.sqlite.reads import SqliteReads
from jobpulse.storage.sqlite.schema import SqliteSchema


class SqliteDialect(SqliteReads, SqliteSchema):
    """SQLite: one `serve` per file, which hears of its own commits."""

    announces = False

    def announce(self, connection: Connection, channel: str, payload: str) -> None:
        """Nothing to send: the one process serving the file hears of its own changes."""


SQLITE = SqliteDialect()
dialects.register(SQLiteDialect, SQLITE)

# Connections: the backend of `sqlite:///` URLs (storage/urls.py).
urls.register("sqlite", SqliteBackend(SQLITE))

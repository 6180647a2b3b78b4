"""How PostgreSQL spells what differs between the databases (see storage/dialects.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import Connection, String, and_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.sql import ColumnElement

from jobpulse.storage import dialects, failures, urls
from jobpulse.storage.postgres import attempts, writes
from jobpulse.storage.postgres.database import PostgresBackend
from jobpulse.storage.postgres.driver import AsyncpgDriver
from jobpulse.storage.postgres.reads import PostgresReads
from jobpulse.storage.postgres.schema import PostgresSchema
from jobpulse.storage.prepared import Driver
from jobpulse.storage.tables import jobs

#: Percent of an outbox page filled by inserts (the rest is for claims' row versions).
OUTBOX_FILLFACTOR = 50


class PostgresDialect(PostgresReads, PostgresSchema):
    """PostgreSQL: many replicas, told of each other's commits by NOTIFY."""

    announces = True

    def announce(self, connection: Connection, channel: str, payload: str) -> None:
        """NOTIFY `channel`'s listeners on every replica when this transaction commits."""
        connection.execute(select(func.pg_notify(channel, payload)))

    # Writes

    driver: Driver = AsyncpgDriver()
    #: Each statement is a round trip: a batch's transitions share theirs.
    shares_transitions = True
    #: BEGIN and COMMIT are round trips too: a batch of one statement goes without them.
    commits_one_statement_alone = True
    lock_jobs = staticmethod(writes.lock_jobs)
    read_jobs = staticmethod(writes.read_jobs)
    update_jobs = staticmethod(writes.update_jobs)
    insert_jobs = staticmethod(writes.insert_jobs)
    insert_job = staticmethod(writes.insert_job)
    record_attempts = staticmethod(attempts.record_attempts)
    records_in_one_statement = True
    #: Replicas' writers, and a replica's several writers, hold jobs' rows for each other.
    writers_wait_for_rows = True

    def create_delivery_storage(self) -> list[str]:
        """Half of each outbox page left free: a claim changes only the lease, which no
        index holds, so its new row version goes on the same page without new index entries
        (a HOT update) while the page has room. Attempts need nothing more: one statement
        records a batch on the tables themselves (postgres/attempts.py).
        """
        return [f"ALTER TABLE outbox SET (fillfactor = {OUTBOX_FILLFACTOR})"]

    def drop_delivery_storage(self) -> list[str]:
        return ["ALTER TABLE outbox RESET (fillfactor)"]

    def is_past(
        self, moment: ColumnElement[Any], seconds: ColumnElement[Any], now: datetime
    ) -> ColumnElement[bool]:
        return moment + seconds * literal_column("interval '1 second'") <= now

    def metadata_equals(self, key: str, param: str) -> ColumnElement[bool]:
        column = jobs.c["metadata"]
        return and_(
            column.op("->>")(key) == bindparam(param, type_=String()),
            func.jsonb_typeof(column.op("->")(key)) == "string",
        )


POSTGRES = PostgresDialect()
dialects.register(PGDialect, POSTGRES)

# Connections: the backend of `postgresql://` URLs (storage/urls.py).
urls.register(PostgresBackend(POSTGRES))
# A connection the driver closed under a request, or one the server terminated while idle
# that is left still reading the notice.
failures.register_unreachable(asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)

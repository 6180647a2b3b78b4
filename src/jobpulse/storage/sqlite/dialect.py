"""How SQLite spells what differs between the databases (see storage/dialects.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, and_, bindparam, func, literal
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.sql import ColumnElement

from jobpulse.storage import dialects, urls
from jobpulse.storage.prepared import Driver
from jobpulse.storage.sqlite import attempts, writes
from jobpulse.storage.sqlite.database import SqliteBackend
from jobpulse.storage.sqlite.driver import Sqlite3Driver
from jobpulse.storage.sqlite.reads import SqliteReads
from jobpulse.storage.sqlite.schema import SqliteSchema
from jobpulse.storage.tables import UTCDateTime, jobs


class SqliteDialect(SqliteReads, SqliteSchema):
    """SQLite: one `serve` per file, which hears of its own commits."""

    announces = False

    def announce(self, connection: Connection, channel: str, payload: str) -> None:
        """Nothing to send: the one process serving the file hears of its own changes."""

    # Writes

    driver: Driver = Sqlite3Driver()
    #: A statement costs no round trip, and the writer runs a lone transition's few straight
    #: on the driver: sharing them would only add the work of gathering them.
    shares_transitions = False
    #: The writer's transactions cost no round trip.
    commits_one_statement_alone = False
    lock_jobs = staticmethod(writes.lock_jobs)
    read_jobs = staticmethod(writes.read_jobs)
    update_jobs = staticmethod(writes.update_jobs)
    insert_jobs = staticmethod(writes.insert_jobs)
    insert_job = staticmethod(writes.insert_job)
    record_attempts = staticmethod(attempts.record_attempts)
    records_in_one_statement = True
    #: The one writer holds the whole file.
    writers_wait_for_rows = False
    create_delivery_storage = staticmethod(attempts.create_recorder)
    drop_delivery_storage = staticmethod(attempts.drop_recorder)

    def is_past(
        self, moment: ColumnElement[Any], seconds: ColumnElement[Any], now: datetime
    ) -> ColumnElement[bool]:
        day = 86400.0
        return func.julianday(moment) + seconds / day <= func.julianday(literal(now, UTCDateTime()))

    def metadata_equals(self, key: str, param: str) -> ColumnElement[bool]:
        column = jobs.c["metadata"]
        path = f'$."{key}"'  # JobFilter admits only keys that need no escaping
        return and_(
            func.json_extract(column, path) == bindparam(param, type_=String()),
            func.json_type(column, path) == "text",
        )


SQLITE = SqliteDialect()
dialects.register(SQLiteDialect, SQLITE)

# Connections: the backend of `sqlite:///` URLs (storage/urls.py).
urls.register(SqliteBackend(SQLITE))

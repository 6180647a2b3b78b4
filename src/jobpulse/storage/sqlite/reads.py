"""How SQLite reads what the databases spell their own ways: buckets of time cut from the
stored text, the stream in id order, the rollups folded by rowid.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Table,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import Executable

from jobpulse.stats.windows import Bucket
from jobpulse.storage import rollups
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.tables import job_events, job_rollup_deltas, job_rollups, user_rollups

#: SQLite's own key of a delta (the table has none of its own).
_ROWID = literal_column("rowid", Integer())


def _cut(column: ColumnElement[Any], span: Bucket) -> ColumnElement[Any]:
    """A stored timestamp ('2026-01-01 12:34:56.000000', see UTCDateTime) cut to its hour or
    day, seconds included: cheaper than strftime's parsing, which was most of a 30-day read
    of the rollups.
    """
    if span == Bucket.HOUR:
        return func.substr(column, 1, 13).concat(":00:00")
    return func.substr(column, 1, 10).concat(" 00:00:00")


class SqliteReads:
    """SQLite's reads (see `Dialect`): one writer commits events in the order of their ids."""

    _fold: tuple[Executable, Executable, Executable] | None = None

    def floor_to(self, column: ColumnElement[Any], bucket: Bucket) -> ColumnElement[Any]:
        return _cut(column, bucket)

    def start_of(self, column: ColumnElement[Any], span: Bucket) -> ColumnElement[Any]:
        return _cut(column, span).concat(".000000")

    def stream_start(self, connection: Connection) -> tuple[tuple[int, int], frozenset[int]]:
        """The last event's id: SQLite's ids are in commit order, so nothing is left behind."""
        last = connection.execute(select(func.max(job_events.c.id))).scalar_one()
        return (0, int(last or 0)), frozenset()

    def stream_order(
        self, events: Table
    ) -> tuple[tuple[ColumnElement[Any], ...], tuple[ColumnElement[bool], ...]]:
        return (events.c.id,), (events.c.id > bindparam("b_id"),)

    def fold_rollups(self, connection: Connection, limit: int | None) -> int:
        """Up to `limit` of the oldest deltas, by rowid, in the single writer's transaction."""
        oldest = select(_ROWID).select_from(job_rollup_deltas).order_by(_ROWID).limit(limit)
        top = connection.execute(select(func.max(oldest.subquery().c.rowid))).scalar()
        if top is None:
            return 0
        by_user, upsert, deleted = self._fold_statements(connection)
        connection.execute(by_user, {"top": top})
        changed = connection.execute(upsert, {"top": top}).rowcount
        connection.execute(deleted, {"top": top})
        return int(changed)

    def _fold_statements(self, connection: Connection) -> tuple[Executable, Executable, Executable]:
        """The fold's three statements, for the deltas up to rowid `:top`: built once, since
        building them (and SQLAlchemy's cache key of them, kept on each statement) cost the
        writer's thread milliseconds of Python each second under load.
        """
        if self._fold is None:
            top = bindparam("top", type_=Integer()) >= _ROWID
            source = select(job_rollup_deltas).where(top).subquery()
            # A WHERE, or SQLite reads the upsert's ON CONFLICT as the ON of the select's join.
            dialect, where = dialect_of(connection), (literal(True),)
            by_user = rollups.into_rollups(
                dialect, source, sqlite.insert(user_rollups), where, table=user_rollups
            )
            upsert = rollups.into_rollups(dialect, source, sqlite.insert(job_rollups), where)
            self._fold = (by_user, upsert, delete(job_rollup_deltas).where(top))
        return self._fold

"""How SQLite reads what the databases spell their own ways: buckets of time cut from the
stored text, the stream in id order, the rollups folded by rowid.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Integer,
    MetaData,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable
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

    _fold: _Fold | None = None

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
        """Up to `limit` of the oldest deltas, by rowid, in the single writer's transaction:
        summed once into a temporary table (`_SUMS`), which both rollups are added from.
        """
        oldest = select(_ROWID).select_from(job_rollup_deltas).order_by(_ROWID).limit(limit)
        top = connection.execute(select(func.max(oldest.subquery().c.rowid))).scalar()
        if top is None:
            return 0
        fold = self._fold_statements(connection)
        connection.exec_driver_sql(_CREATE_SUMS)  # IF NOT EXISTS: made by the first fold
        connection.execute(fold.sums, {"top": top})
        connection.execute(fold.by_user)
        changed = connection.execute(fold.upsert).rowcount
        connection.execute(fold.folded, {"top": top})
        connection.execute(fold.cleared)
        return int(changed)

    def _fold_statements(self, connection: Connection) -> _Fold:
        """The fold's statements, for the deltas up to rowid `:top`: built once, since
        building them (and SQLAlchemy's cache key of them, kept on each statement) cost the
        writer's thread milliseconds of Python each second under load.
        """
        if self._fold is None:
            top = bindparam("top", type_=Integer()) >= _ROWID
            source = select(job_rollup_deltas).where(top).subquery()
            sums = rollups.sums_of(dialect_of(connection), source)
            # A WHERE, or SQLite reads the upsert's ON CONFLICT as the ON of the select's join.
            where = (literal(True),)
            self._fold = _Fold(
                insert(_SUMS).from_select(rollups.USER_COLUMNS, sums),
                rollups.into_rollups(_SUMS, sqlite.insert(user_rollups), where, user_rollups),
                rollups.into_rollups(_SUMS, sqlite.insert(job_rollups), where),
                delete(job_rollup_deltas).where(top),
                delete(_SUMS),
            )
        return self._fold


class _Fold(NamedTuple):
    """A fold's statements (see `SqliteReads.fold_rollups`)."""

    sums: Executable
    by_user: Executable
    upsert: Executable
    folded: Executable
    cleared: Executable


#: The deltas' rollup rows summed by user, while a fold runs: a table of the writer's
#: connection (SQLite's TEMP), empty between folds.
_SUMS = Table(
    "rollup_sums",
    MetaData(),
    *(Column(column.name, column.type) for column in user_rollups.c),
    prefixes=["TEMPORARY"],
)
_CREATE_SUMS = str(CreateTable(_SUMS, if_not_exists=True).compile(dialect=sqlite.dialect()))

"""How PostgreSQL reads what the databases spell their own ways: buckets of time by
date_trunc, the stream in transaction order, the rollups folded in one statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import Executable

from jobpulse.stats.windows import Bucket
from jobpulse.storage import rollups
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.tables import job_events, job_rollup_deltas, job_rollups, user_rollups

#: The advisory lock one fold holds: replicas take turns instead of blocking.
FOLD_LOCK = 0x6A6F6270  # "jobp"
#: The stream's horizon: the oldest transaction still running that may write to this
#: database, as an integer (PostgreSQL 13 and later); the snapshot's xmax when none is.
#: Transaction ids are the server's, so the snapshot's own xmin would wait for a transaction
#: of another database on a shared server (a long batch, a session idle in a transaction)
#: and hold every stream back meanwhile: those are left out, known by their 32-bit ids in
#: pg_stat_activity. Whatever it cannot place (a prepared transaction, a subtransaction, a
#: backend it is not shown) still holds the horizon: late, never lost.
_XMIN: ColumnElement[int] = literal_column(
    "(SELECT coalesce(min(x::text::bigint),"
    " pg_snapshot_xmax(pg_current_snapshot())::text::bigint)"
    " FROM pg_snapshot_xip(pg_current_snapshot()) AS x"
    " WHERE x::text::bigint % 4294967296 NOT IN ("
    "SELECT backend_xid::text::bigint FROM pg_stat_activity"
    " WHERE datname IS DISTINCT FROM current_database() AND backend_xid IS NOT NULL))",
    BigInteger(),
)


class PostgresReads:
    """PostgreSQL's reads (see `Dialect`): transactions commit in any order, so the stream
    goes by (txid, id), up to the oldest transaction still running (storage/events.py).
    """

    _fold: Executable | None = None

    def floor_to(self, column: ColumnElement[Any], bucket: Bucket) -> ColumnElement[Any]:
        return func.date_trunc(bucket.value, func.timezone("UTC", column))

    def start_of(self, column: ColumnElement[Any], span: Bucket) -> ColumnElement[Any]:
        return func.timezone("UTC", func.date_trunc(span.value, func.timezone("UTC", column)))

    def stream_start(self, connection: Connection) -> tuple[tuple[int, int], frozenset[int]]:
        """(xmin, 0), and the transactions at or past xmin whose events are already
        committed: read in one statement, so in one snapshot.
        """
        committed = (
            select(job_events.c.txid).where(job_events.c.txid >= _XMIN).distinct()
        ).scalar_subquery()
        xmin, before = connection.execute(select(_XMIN, func.array(committed))).one()
        return (int(xmin), 0), frozenset(int(txid) for txid in before)

    def stream_order(
        self, events: Table
    ) -> tuple[tuple[ColumnElement[Any], ...], tuple[ColumnElement[bool], ...]]:
        txid, number = events.c.txid, events.c.id
        later = or_(
            txid > bindparam("b_txid"),
            and_(txid == bindparam("b_txid"), number > bindparam("b_id")),
        )
        return (txid, number), (later, txid < _XMIN)

    def fold_rollups(self, connection: Connection, limit: int | None) -> int:
        """Every delta committed, taken and deleted in one statement (`limit` is SQLite's);
        0 while another replica folds.
        """
        taken = connection.execute(select(func.pg_try_advisory_xact_lock(FOLD_LOCK))).scalar()
        if not taken:
            return 0
        if self._fold is None:
            # Built once: building it (and SQLAlchemy's cache key of it, kept on the
            # statement) cost milliseconds of Python a fold.
            dialect = dialect_of(connection)
            deltas = delete(job_rollup_deltas).returning(*job_rollup_deltas.c).cte("folded")
            sums = rollups.sums_of(dialect, deltas).cte("sums")  # read once, added twice
            by_user = rollups.into_rollups(sums, postgresql.insert(user_rollups), (), user_rollups)
            upsert = rollups.into_rollups(sums, postgresql.insert(job_rollups))
            self._fold = upsert.add_cte(by_user.cte("by_user"))
        return int(connection.execute(self._fold).rowcount)

"""Applied history events in a stable order a reader can resume from, for the live stream.

On SQLite one writer commits events in the order of their ids, so an event's position is its
id. On PostgreSQL ids are taken before commit, and transactions commit in any order: a reader
that remembered "the last id I saw" would skip an id that commits after a larger one. Each
event therefore also records its transaction id (`txid`, a column default), and a position is
(txid, id). Only events of transactions older than every transaction still running (the
snapshot's xmin) are read: no event can ever appear below such a position, so a reader that
resumes after one loses nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, and_, bindparam, literal_column, or_, select

from jobpulse.domain import ACTIVE, Actor, Job, JobEvent
from jobpulse.listing import JobFilter
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.repository import (
    EVENT_COLUMNS,
    SELECT_JOB,
    job_filter_clauses,
    to_event,
    to_job,
)
from jobpulse.storage.tables import job_events, jobs


class Position(NamedTuple):
    """Where an event sits in the stream: (transaction id, event id); txid is 0 on SQLite."""

    txid: int
    id: int

    def __str__(self) -> str:
        return f"{self.txid}.{self.id}"

    @classmethod
    def parse(cls, text: str) -> Position | None:
        """The position written as `str(position)`, or None if `text` is not one."""
        txid, dot, number = text.strip().partition(".")
        if not dot or not all(part.isascii() and part.isdigit() for part in (txid, number)):
            return None
        position = cls(int(txid), int(number))
        return position if max(position) < 2**63 else None


class Happened(NamedTuple):
    """One applied event, where it sits, and its job as it is now."""

    position: Position
    event: JobEvent
    job: Job


class Start(NamedTuple):
    """Where a stream that starts now starts: its position, and the transactions committed
    before now whose events may still come after that position (PostgreSQL commits in any
    order: see `Dialect.stream_start`), which such a stream leaves out.
    """

    position: Position
    committed: frozenset[int]

    def is_before(self, position: Position) -> bool:
        """Whether the event at `position` was committed before this start."""
        return position <= self.position or position.txid in self.committed


def start(connection: Connection) -> Start:
    """Where a stream starting now starts."""
    position, committed = dialect_of(connection).stream_start(connection)
    return Start(Position(*position), committed)


_EVENT = tuple(job_events.c[name] for name in EVENT_COLUMNS)
_JOB = tuple(SELECT_JOB.selected_columns)


def _statement(dialect: Dialect, clauses: tuple[Any, ...]) -> Select[Any]:
    keys, conditions = dialect.stream_order(job_events)
    txid = keys[0] if len(keys) == 2 else literal_column("0")
    return (
        select(txid, job_events.c.id, *_EVENT, *_JOB)
        .join_from(job_events, jobs, jobs.c.id == job_events.c.job_id)
        .where(job_events.c.applied.is_(True), *conditions, *clauses)
        .order_by(*keys)
        .limit(bindparam("b_limit"))
    )


def after(
    connection: Connection,
    position: Position,
    limit: int,
    actor: Actor | None = None,
    query: JobFilter | None = None,
) -> list[Happened]:
    """Up to `limit` applied events after `position`, oldest first: all of them, or (given an
    actor) those of the jobs the actor may see under `query`.
    """
    clauses: tuple[Any, ...] = ()
    params: dict[str, Any] = {}
    if actor is not None:
        clauses, params = job_filter_clauses(dialect_of(connection), actor, query or JobFilter())
    params |= {"b_txid": position.txid, "b_id": position.id, "b_limit": limit}
    found = []
    for row in connection.execute(_statement(dialect_of(connection), clauses), params):
        event = to_event(dict(zip(EVENT_COLUMNS, row[2 : 2 + len(_EVENT)], strict=True)))
        job = to_job(row[2 + len(_EVENT) :])
        found.append(Happened(Position(int(row[0]), int(row[1])), event, job))
    return found


def beats_after(connection: Connection, since: datetime, limit: int) -> list[Job]:
    """Jobs that sent a heartbeat after `since` (by its stamp), the earliest first.

    A heartbeat moves `updated_at` with `heartbeat_at`, so the partial index of active jobs by
    (status, updated_at) finds them, and that of ended jobs by end those that ended since.
    Not a resumable order: a heartbeat committed late with an earlier stamp can be passed
    over, which a liveness signal can afford.
    """
    active = and_(
        jobs.c.completed_at.is_(None),
        jobs.c.status.in_(sorted(ACTIVE)),
        jobs.c.updated_at > since,
    )
    rows = connection.execute(
        SELECT_JOB.where(
            or_(active, jobs.c.completed_at > since),  # one that has ended since, too
            jobs.c.heartbeat_at > since,
        )
        .order_by(jobs.c.heartbeat_at)
        .limit(limit)
    )
    return [to_job(row) for row in rows]

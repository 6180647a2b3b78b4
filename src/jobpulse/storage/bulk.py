"""Bulk actions on the jobs a filter matches, one bounded step per short write.

A step reads the next matching jobs after a keyset cursor ((created_at, id), the order of the
listing's indexes) and acts on them in the same transaction: cancels go through the planned,
compare-and-set path of every change (storage/transitions.py), re-sends make a job's callback
due again. While other changes keep coming, a step works a few jobs at a time and ends as
soon as one waits, so a bulk action of any size never holds the writer for long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, exists, func, select, tuple_

from jobpulse.domain import ACTIVE, TERMINAL, Actor, Job, JobStatus, Plan
from jobpulse.errors import NotFoundError
from jobpulse.listing import JobFilter
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.engine import Database
from jobpulse.storage.group_commit import Traffic
from jobpulse.storage.outbox import requeue_callback
from jobpulse.storage.repository import job_filter_clauses
from jobpulse.storage.tables import jobs, outbox
from jobpulse.storage.transitions import Transition, write_plans

_AFTER_AT = bindparam("b_after_at", type_=jobs.c.created_at.type)
_AFTER_ID = bindparam("b_after_id", type_=jobs.c.id.type)
#: Where a walk through matching jobs stands: the (created_at, id) of the last job seen.
Cursor = tuple[datetime, str]
#: Jobs a step handles at a time while changes are coming in (each wait is this short).
STEP_WHEN_BUSY = 1
#: Jobs a step reads while changes are coming in: it will likely end after a few of them.
READ_WHEN_BUSY = 16


@dataclass(frozen=True, slots=True)
class Stepped:
    """What one step did: jobs seen, the changes applied, where to go on (None: at the end)."""

    matched: int
    changed: list[tuple[Job, Plan]] = field(default_factory=list)
    resent: int = 0
    cursor: Cursor | None = None


def _next_jobs(
    connection: Connection, actor: Actor, query: JobFilter, after: Cursor | None, limit: int
) -> list[Any]:
    """Up to `limit` matching jobs after `after`, in (created_at, id) order."""
    clauses, params = job_filter_clauses(dialect_of(connection), actor, query)
    order = tuple_(jobs.c.created_at, jobs.c.id)
    where = list(clauses)
    if after is not None:
        where.append(order > tuple_(_AFTER_AT, _AFTER_ID))
        params |= {"b_after_at": after[0], "b_after_id": after[1]}
    statement = (
        select(jobs.c.id, jobs.c.created_at, jobs.c.status)
        .where(*where)
        .order_by(jobs.c.created_at, jobs.c.id)
        .limit(limit)
    )
    return list(connection.execute(statement, params).all())


def _read_limit(limit: int, traffic: Traffic | None) -> int:
    """How many jobs a step reads: fewer while changes keep coming (it ends early then)."""
    busy = traffic is not None and traffic.recent()
    return min(limit, READ_WHEN_BUSY) if busy else limit


def _chunks(rows: list[Any], traffic: Traffic | None) -> Any:
    """`rows` a few at a time while the writer is busy, else all at once; stops when a
    change waits (the caller then ends its step at the last row handled).
    """
    start = 0
    while start < len(rows):
        busy = traffic is not None and traffic.recent()
        size = STEP_WHEN_BUSY if busy else len(rows)
        yield rows[start : start + size]
        start += size
        if traffic is not None and traffic.waiting():
            return


def cancel_step(
    connection: Connection,
    actor: Actor,
    query: JobFilter,
    after: Cursor | None,
    limit: int,
    planner: Callable[[Job], Plan],
    traffic: Traffic | None = None,
) -> Stepped:
    """Apply `planner` (a cancel) to the active ones of the next `limit` matching jobs."""
    limit = _read_limit(limit, traffic)
    rows = _next_jobs(connection, actor, query, after, limit)
    seen = 0
    changed: list[tuple[Job, Plan]] = []
    for chunk in _chunks(rows, traffic):
        requests = [Transition(actor, row.id, planner) for row in chunk if row.status in ACTIVE]
        for ok, outcome in write_plans(connection, requests):
            if ok and outcome[1].event is not None:
                changed.append(outcome)
        seen += len(chunk)
    return _stepped(rows, seen, limit, changed=changed)


def resend_step(
    connection: Connection,
    actor: Actor,
    query: JobFilter,
    after: Cursor | None,
    limit: int,
    now: datetime,
    traffic: Traffic | None = None,
) -> Stepped:
    """Make the callbacks of the ended ones of the next `limit` matching jobs due again."""
    limit = _read_limit(limit, traffic)
    rows = _next_jobs(connection, actor, query, after, limit)
    seen = resent = 0
    for chunk in _chunks(rows, traffic):
        for row in chunk:
            if JobStatus(row.status) in TERMINAL:
                try:
                    requeue_callback(connection, row.id, now)
                except NotFoundError:
                    continue  # no callback to send
                resent += 1
        seen += len(chunk)
    return _stepped(rows, seen, limit, resent=resent)


def _stepped(rows: list[Any], seen: int, limit: int, **done: Any) -> Stepped:
    at_end = seen == len(rows) and len(rows) < limit
    last = rows[seen - 1] if seen else None
    cursor = None if at_end or last is None else (last.created_at, last.id)
    return Stepped(matched=seen, cursor=cursor, **done)


def count_resendable(connection: Connection, actor: Actor, query: JobFilter) -> tuple[int, int]:
    """How many jobs match, and how many of them have ended with a callback to re-send."""
    clauses, params = job_filter_clauses(dialect_of(connection), actor, query)
    has_callback = exists().where(outbox.c.job_id == jobs.c.id, outbox.c.event_type.like("job.%"))
    ended = jobs.c.status.in_(sorted(TERMINAL))
    statement = select(
        func.count(),
        func.coalesce(func.sum(_one_if(and_(ended, has_callback))), 0),
    ).where(*clauses)
    matched, resendable = connection.execute(statement, params).one()
    return int(matched), int(resendable)


def _one_if(condition: Any) -> Any:
    return case((condition, 1), else_=0)


class SqlBulkStore:
    """The BulkStore operations on SQL (a mixin of SqlJobStore, see storage/bulk_store.py)."""

    database: Database

    async def cancel_step(
        self,
        actor: Actor,
        query: JobFilter,
        after: Cursor | None,
        limit: int,
        planner: Callable[[Job], Plan],
    ) -> Stepped:
        traffic = self.database.traffic
        return await self.database.write_background(
            cancel_step, actor, query, after, limit, planner, traffic
        )

    async def resend_step(
        self, actor: Actor, query: JobFilter, after: Cursor | None, limit: int, now: datetime
    ) -> Stepped:
        traffic = self.database.traffic
        return await self.database.write_background(
            resend_step, actor, query, after, limit, now, traffic
        )

    async def count_resendable(self, actor: Actor, query: JobFilter) -> tuple[int, int]:
        return await self.database.scan(count_resendable, actor, query)

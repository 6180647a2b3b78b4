"""Retention: ended jobs (with their history, steps, delivery attempts and LLM calls) and
finished outbox messages older than a cut-off go, a bounded batch per short transaction, so
that a prune of millions never holds the writer for long: while changes keep coming, a batch
works one job at a time and ends as soon as one waits. Active jobs and undelivered messages
are never touched. The calls' share of the usage rollups goes with them, as the jobs' share
of the job rollups does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Select,
    bindparam,
    delete,
    func,
    literal_column,
    select,
)

from jobpulse.domain import TERMINAL
from jobpulse.storage import prepared
from jobpulse.storage.feature_tables import llm_usage
from jobpulse.storage.outbox import PENDING
from jobpulse.storage.tables import UTCDateTime, callback_attempts, jobs, outbox
from jobpulse.storage.usage_rollups import (
    Recorded,
    deleting_calls,
    remove_from_rollups,
    take_out_calls,
)

#: What a prune counts, by kind (a job's history and steps go with it, by ON DELETE CASCADE).
KINDS = ("jobs", "attempts", "messages")


_CUTOFF = bindparam("b_cutoff", type_=UTCDateTime())
#: Statuses written out, not bound, so that the statements compile once for the driver.
_TERMINAL: list[ColumnElement[str]] = [
    literal_column(f"'{status.value}'") for status in sorted(TERMINAL)
]
_OLD_JOB = (jobs.c.completed_at < _CUTOFF) & jobs.c.status.in_(_TERMINAL)
#: Written out, not bound: only then can SQLite use the partial index of finished messages.
_OLD_MESSAGE = (outbox.c.state != literal_column(f"'{PENDING}'")) & (outbox.c.created_at < _CUTOFF)


def count_old(connection: Connection, cutoff: datetime) -> dict[str, int]:
    """What a prune at `cutoff` would remove (a dry run)."""
    old = select(jobs.c.id).where(_OLD_JOB).scalar_subquery()
    finished = select(outbox.c.id).where(_OLD_MESSAGE).scalar_subquery()
    statements = {
        "jobs": select(func.count()).where(_OLD_JOB),
        "attempts": select(func.count()).where(
            callback_attempts.c.job_id.in_(old) | callback_attempts.c.outbox_id.in_(finished)
        ),
        "messages": select(func.count()).where(_OLD_MESSAGE),
    }
    return {
        kind: int(connection.execute(statement, {"b_cutoff": cutoff}).scalar_one())
        for kind, statement in statements.items()
    }


#: Jobs a step removes while changes are coming in: a change that arrives during a step waits
#: for at most this many (more would stretch a writer's p99 during a prune; see
#: docs/performance.md, section retention).
STEP_WHEN_BUSY = 1


class Traffic(Protocol):
    """The writer's load, as a background command sees it (see storage/engine.py)."""

    def waiting(self) -> bool:
        """A change is queued now."""
        ...

    def recent(self) -> bool:
        """Changes came in a moment ago."""
        ...


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one prune batch removed, by kind, and whether nothing old is left."""

    removed: dict[str, int]
    finished: bool


def _pick(key: Column[Any], old: ColumnElement[bool], age: Column[Any]) -> Select[Any]:
    """The keys of at most `b_limit` rows matching `old`, oldest first, locked (rows another
    pruner holds are skipped). Used as a subquery: the ids never travel to Python.
    """
    return (
        select(key)
        .where(old)
        .order_by(age)
        .limit(bindparam("b_limit"))
        .offset(literal_column("0"))  # written out: SQLite's compiler binds one otherwise
        .with_for_update(skip_locked=True)
    )


_OLD_JOBS = _pick(jobs.c.id, _OLD_JOB, jobs.c.completed_at)
_OLD_MESSAGES = _pick(outbox.c.id, _OLD_MESSAGE, outbox.c.created_at)
#: The LLM calls of the jobs a step removes (deleted before them, to be taken out of the usage
#: rollups; the jobs' cascade would leave nothing to read).
_OLD_CALLS = deleting_calls(llm_usage.c.job_id.in_(_OLD_JOBS))
#: By kind, the statements that remove a step's rows, the counted one last. The statements of
#: a kind pick the same rows: the first locks them for the transaction.
_STEPS = {
    "jobs": (
        delete(callback_attempts).where(callback_attempts.c.job_id.in_(_OLD_JOBS)),
        delete(jobs).where(jobs.c.id.in_(_OLD_JOBS)),
    ),
    "messages": (
        delete(callback_attempts).where(callback_attempts.c.outbox_id.in_(_OLD_MESSAGES)),
        delete(outbox).where(outbox.c.id.in_(_OLD_MESSAGES)),
    ),
}


def prune_batch(
    connection: Connection, cutoff: datetime, limit: int, traffic: Traffic | None = None
) -> Pruned:
    """Remove at most `limit` rows (old ended jobs first, then old finished messages) with
    what hangs on them, in the caller's transaction.

    Given `traffic`, it makes way for changes: while they keep coming, it works in steps of
    `STEP_WHEN_BUSY` rows and ends the batch early as soon as one is queued.
    """
    calls: list[Recorded] = []
    pruned = _prune(connection, cutoff, limit, traffic, calls)
    remove_from_rollups(connection, calls)  # once, in key order, for the whole batch
    return pruned


def _prune(
    connection: Connection,
    cutoff: datetime,
    limit: int,
    traffic: Traffic | None,
    calls: list[Recorded],
) -> Pruned:
    """`prune_batch`, adding the LLM calls it deletes to `calls`."""
    removed = dict.fromkeys(KINDS, 0)
    left = limit
    for kind, (attempts, counted) in _STEPS.items():
        while left > 0:
            step = STEP_WHEN_BUSY if traffic is not None and traffic.recent() else left
            wanted = min(step, left)
            params = {"b_cutoff": cutoff, "b_limit": wanted}
            removed["attempts"] += prepared.write(connection, attempts, params)
            if kind == "jobs":
                calls += take_out_calls(connection, _OLD_CALLS, params)
            gone = prepared.write(connection, counted, params)
            removed[kind] += gone
            left -= gone
            if gone < wanted:
                break  # none of this kind left
            if traffic is not None and traffic.waiting():
                return Pruned(removed, finished=False)
        if left == 0:
            return Pruned(removed, finished=False)
    return Pruned(removed, finished=True)

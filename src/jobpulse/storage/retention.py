"""Retention: ended jobs (with their history, steps and delivery attempts) and finished
outbox messages older than a cut-off go, a bounded batch per short transaction, so that a
prune of millions never holds the writer for long. Active jobs and undelivered messages are
never touched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, delete, func, literal, select

from jobpulse.domain import TERMINAL
from jobpulse.storage.outbox import PENDING
from jobpulse.storage.tables import callback_attempts, jobs, outbox

#: What a prune counts, by kind (a job's history and steps go with it, by ON DELETE CASCADE).
KINDS = ("jobs", "attempts", "messages")


def _old_jobs(cutoff: datetime) -> ColumnElement[bool]:
    return (jobs.c.completed_at < cutoff) & jobs.c.status.in_(sorted(TERMINAL))


#: Written out, not bound: only then can SQLite use the partial index of finished messages.
_FINISHED = outbox.c.state != literal(PENDING, literal_execute=True)


def _old_messages(cutoff: datetime) -> ColumnElement[bool]:
    return _FINISHED & (outbox.c.created_at < cutoff)


def count_old(connection: Connection, cutoff: datetime) -> dict[str, int]:
    """What a prune at `cutoff` would remove (a dry run)."""
    old = select(jobs.c.id).where(_old_jobs(cutoff)).scalar_subquery()
    finished = select(outbox.c.id).where(_old_messages(cutoff)).scalar_subquery()
    statements = {
        "jobs": select(func.count()).where(_old_jobs(cutoff)),
        "attempts": select(func.count()).where(
            callback_attempts.c.job_id.in_(old) | callback_attempts.c.outbox_id.in_(finished)
        ),
        "messages": select(func.count()).where(_old_messages(cutoff)),
    }
    return {
        kind: int(connection.execute(statement).scalar_one())
        for kind, statement in statements.items()
    }


def _oldest(
    key: ColumnElement[Any], old: ColumnElement[bool], age: ColumnElement[Any], limit: int
) -> Select[Any]:
    """The keys of at most `limit` rows matching `old`, oldest first, locked (rows another
    pruner holds are skipped). Used as a subquery: the ids never travel to Python.
    """
    return select(key).where(old).order_by(age).limit(limit).with_for_update(skip_locked=True)


def prune_batch(connection: Connection, cutoff: datetime, limit: int) -> dict[str, int]:
    """Remove at most `limit` old ended jobs and `limit` old finished messages, with what
    hangs on them; how many rows of each kind went. Both statements of a kind pick the same
    rows: the first one locks them for the transaction.
    """
    old_jobs = _oldest(jobs.c.id, _old_jobs(cutoff), jobs.c.completed_at, limit)
    old_messages = _oldest(outbox.c.id, _old_messages(cutoff), outbox.c.created_at, limit)
    statements = (
        ("attempts", delete(callback_attempts).where(callback_attempts.c.job_id.in_(old_jobs))),
        ("jobs", delete(jobs).where(jobs.c.id.in_(old_jobs))),
        (
            "attempts",
            delete(callback_attempts).where(callback_attempts.c.outbox_id.in_(old_messages)),
        ),
        ("messages", delete(outbox).where(outbox.c.id.in_(old_messages))),
    )
    removed = dict.fromkeys(KINDS, 0)
    for kind, statement in statements:
        removed[kind] += connection.execute(statement).rowcount
    return removed

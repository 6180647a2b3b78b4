"""New jobs of a writer batch stored together: one INSERT of the jobs (with their rollup
deltas, see storage/changes.py) and one of their first events for the whole batch, instead of
a savepoint and two statements each. A job whose idempotency key is already taken (before, or
earlier in the batch) is answered with the job made with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Connection, tuple_

from jobpulse.domain import Job, JobEvent
from jobpulse.storage.changes import insert_jobs
from jobpulse.storage.dialects import Dialect
from jobpulse.storage.group_commit import commits_each_statement
from jobpulse.storage.recent import recent_jobs
from jobpulse.storage.repository import (
    SELECT_JOB,
    creation_event,
    insert_job,
    job_row,
    to_job,
)
from jobpulse.storage.tables import jobs


@dataclass(frozen=True, slots=True)
class Creation:
    """A new job to store, which a writer batch may store with others."""

    job: Job
    idempotency_key: str | None

    def __call__(self, connection: Connection) -> tuple[Job, bool]:
        """Alone: see `insert_job`; with no idempotency key, as a batch of one (its statements
        need no savepoint).
        """
        if self.idempotency_key is None:
            [(_, made)] = _create_together(connection, [self])
            return made  # type: ignore[no-any-return]
        return insert_job(connection, self.job, self.idempotency_key)

    @staticmethod
    def is_shared_on(dialect: Dialect) -> bool:
        """Alone, a creation takes a savepoint (for its idempotency key): sharing pays on
        every database.
        """
        return True

    #: Building a batch's statement is most of its time (on PostgreSQL, 0.70 of the 1.23 ms
    #: a batch of 16 takes), so a writer with no other batch in flight takes half of what is
    #: queued: another writer builds the rest while this one's statement runs (see
    #: TaskWriter). Creates at 16 callers against a raw pool of 16 rose from 1.61 to 2.08 and
    #: 2.18; transitions, whose statement is mostly the database's work, fell from 1.87 to
    #: 1.60 when halved too.
    halved_when_idle: ClassVar[bool] = True

    @staticmethod
    def is_one_statement(requests: Sequence[Creation]) -> bool:
        """Whether storing `requests` together is one statement: no idempotency key to look
        up first.
        """
        return all(request.idempotency_key is None for request in requests)

    @staticmethod
    def run_together(
        connection: Connection, requests: Sequence[Creation]
    ) -> list[tuple[bool, Any]]:
        """Store `requests` in the caller's transaction, a few statements for all of them."""
        return _create_together(connection, requests)


_Key = tuple[str, str, str]


class KeyTakenMeanwhileError(Exception):
    """A key another writer stored while a batch ran, and whose job is gone already: the
    batch runs again, a request at a time (see group_commit), where the key is free.
    """


def _key(job: Job, idempotency_key: str | None) -> _Key | None:
    return None if idempotency_key is None else (job.organization_id, job.user_id, idempotency_key)


def _row_key(row: dict[str, Any]) -> tuple[bool, str, str, str]:
    """A row's place when rows with keys are stored: by owner and key (those without last)."""
    key = row["idempotency_key"]
    return (key is None, row["organization_id"], row["user_id"], key or "")


def _create_together(
    connection: Connection, requests: Sequence[Creation]
) -> list[tuple[bool, Any]]:
    wanted = {key for r in requests if (key := _key(r.job, r.idempotency_key)) is not None}
    made = _made_with(connection, wanted) if wanted else {}
    outcomes: list[tuple[bool, Any]] = []
    rows: list[dict[str, Any]] = []
    events: list[JobEvent] = []
    for request in requests:
        key = _key(request.job, request.idempotency_key)
        if key is not None and key in made:
            outcomes.append((True, (made[key], False)))
            continue
        if key is not None:
            made[key] = request.job
        rows.append(job_row(request.job, request.idempotency_key))
        events.append(creation_event(request.job))
        outcomes.append((True, (request.job, True)))
    if wanted:
        # In the order of their keys: a key another writer inserts too is waited for, and
        # writers that each wait for a key the other holds would deadlock (a second each).
        rows.sort(key=_row_key)
    stored = insert_jobs(connection, rows, events)
    if wanted and len(stored) < len(rows):
        _answer_keys_taken_meanwhile(connection, requests, outcomes, stored)
    if commits_each_statement(connection):  # each row's version its own (see storage/recent.py)
        kept = recent_jobs(connection)
        for ok, (job, new) in outcomes:
            if ok and new and (version := stored.get(job.id)) is not None:
                kept.keep(job, version)
    return outcomes


def _made_with(connection: Connection, keys: set[_Key]) -> dict[_Key, Job]:
    """The jobs stored with `keys`, by key."""
    owners = tuple_(jobs.c.organization_id, jobs.c.user_id, jobs.c.idempotency_key)
    statement = SELECT_JOB.add_columns(jobs.c.idempotency_key).where(owners.in_(keys))
    made: dict[_Key, Job] = {}
    for row in connection.execute(statement):
        job = to_job(row[:-1])
        made[(job.organization_id, job.user_id, row[-1])] = job
    return made


def _answer_keys_taken_meanwhile(
    connection: Connection,
    requests: Sequence[Creation],
    outcomes: list[tuple[bool, Any]],
    stored: dict[str, Any],
) -> None:
    """Answer with another writer's job each request whose key that writer stored after the
    batch looked its keys up (the INSERT left its row out, see `Dialect.insert_jobs`), as
    the request would have been answered alone.
    """
    left_out = {
        key
        for request, (_, (job, new)) in zip(requests, outcomes, strict=True)
        if new and job.id not in stored and (key := _key(job, request.idempotency_key))
    }
    theirs = _made_with(connection, left_out)
    for n, request in enumerate(requests):
        key = _key(request.job, request.idempotency_key)
        if key in left_out:
            if key not in theirs:  # their job is gone already: nothing holds the key now
                raise KeyTakenMeanwhileError(key)
            outcomes[n] = (True, (theirs[key], False))

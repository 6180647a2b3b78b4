"""SQLite's writes of new and changed jobs: a statement costs no round trip here, so each
job has its own, run straight on the driver.

New jobs' deltas go in with one executemany, cheaper than an insert trigger; a trigger
(migration 0009) writes an update's delta, cheaper than one more statement from Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert

from jobpulse.domain import JobEvent
from jobpulse.storage import prepared
from jobpulse.storage.changes import UPDATE_GUARDED, JobWrite, Queued, created_delta, guarded
from jobpulse.storage.outbox import insert_messages
from jobpulse.storage.repository import LOCK_ONE, insert_events
from jobpulse.storage.tables import job_rollup_deltas, jobs

_INSERT = insert(jobs)
_INSERT_DELTA = insert(job_rollup_deltas)


def lock_jobs(connection: Connection, ids: Sequence[str]) -> list[Sequence[Any]]:
    """The jobs of `ids` that exist (the one writer holds them all: no row locks)."""
    found = []
    for job_id in ids:
        row = prepared.first(connection, LOCK_ONE, {"b_id": job_id})
        if row is not None:
            found.append(row)
    return found


def read_jobs(connection: Connection, ids: Sequence[str], locked: bool) -> list[Sequence[Any]]:
    """The jobs of `ids` that exist, each with no version (None) last: the one writer holds
    them all until it commits, `locked` or not.
    """
    return [(*row, None) for row in lock_jobs(connection, ids)]


def update_jobs(
    connection: Connection,
    writes: Sequence[JobWrite],
    events: Sequence[JobEvent],
    messages: Sequence[Queued],
) -> dict[str, None]:
    """Write each job's changed columns where it has the status its plan expected, then the
    history rows `events` and outbox `messages` of the jobs written and of jobs no write
    names; the jobs written (with no version: SQLite keeps none).
    """
    done: dict[str, None] = {
        write.locked.id: None
        for write in writes
        if prepared.write(connection, UPDATE_GUARDED, guarded(write))
    }
    left = {write.locked.id for write in writes} - done.keys()
    insert_events(connection, [event for event in events if event.job_id not in left])
    insert_messages(connection, [message for job_id, message in messages if job_id not in left])
    return done


def insert_jobs(
    connection: Connection, rows: Sequence[Mapping[str, Any]], events: Sequence[JobEvent]
) -> dict[str, None]:
    """Store new jobs' rows and their deltas, then the history rows `events`; the jobs
    stored (with no version: SQLite keeps none).
    """
    prepared.write_many(connection, _INSERT, rows)
    prepared.write_many(connection, _INSERT_DELTA, [created_delta(row) for row in rows])
    insert_events(connection, events)
    return dict.fromkeys(row["id"] for row in rows)


def insert_job(connection: Connection, row: Mapping[str, Any]) -> None:
    """Store one new job's row and its delta; IntegrityError if a key of it is taken."""
    connection.execute(_INSERT, row)
    prepared.write(connection, _INSERT_DELTA, created_delta(row))

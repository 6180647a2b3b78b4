"""New and changed jobs written with their rollup deltas, in as few statements as each
database allows: the columns and rows both databases write, and the entry points that hand
them to the driver's writes (storage/postgres/writes.py, storage/sqlite/writes.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, update

from jobpulse.domain import Job, JobEvent, JobStatus, OutboxMessage
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.rollups import CHANGING
from jobpulse.storage.tables import jobs

#: A job's fields, in order: its columns, source_id left out.
JOB_FIELDS = tuple(field.name for field in fields(Job))
#: Every column a change may write: all of a job's but its identity, owner and LLM usage
#: (written by its records alone, storage/usage.py).
WRITTEN = tuple(
    name
    for name in (*JOB_FIELDS, "source_id")
    if name not in ("id", "organization_id", "user_id", "created_at", "usage")
)
#: Every column of a new job's row (no usage yet).
INSERTED = (*(name for name in JOB_FIELDS if name != "usage"), "source_id", "idempotency_key")
#: The fields of a delta its job never changes.
FIXED = ("organization_id", "user_id", "job_type", "created_at")

#: One job's changed columns (those of the statement's parameters), guarded by the status its
#: plan expected: a change made to a job in another status is not the one planned.
UPDATE_GUARDED = update(jobs).where(
    jobs.c.id == bindparam("b_id"), jobs.c.status == bindparam("b_expected")
)


class JobWrite(NamedTuple):
    """One job's change: the job as read, as changed, the fields that make the one of the
    other, the status its plan expected the stored job to have, and the version of its row
    as read (see `Dialect.read_jobs`).
    """

    locked: Job
    changed: Job
    values: Mapping[str, Any]
    expected: JobStatus
    version: Any = None

    def counted_changed(self) -> bool:
        """A field the rollups count changed."""
        return any(getattr(self.locked, name) != getattr(self.changed, name) for name in CHANGING)


class Queued(NamedTuple):
    """An outbox message a change queues, and the job whose write it goes in with."""

    change_of: str
    message: OutboxMessage


def column_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Job field values as column values, keeping the source_id column in step."""
    columns = dict(values)
    if "metadata" in values:
        source = values["metadata"].get("source_id")
        columns["source_id"] = None if source is None else str(source)
    return columns


def written(job: Job, names: Sequence[str] = WRITTEN) -> dict[str, Any]:
    """The values of a job's written columns `names` (source_id with metadata)."""
    return column_values({name: getattr(job, name) for name in names if name != "source_id"})


def guarded(write: JobWrite) -> dict[str, Any]:
    """The parameters of `UPDATE_GUARDED` for one job's change."""
    return column_values(write.values) | {"b_id": write.locked.id, "b_expected": write.expected}


def created_delta(row: Mapping[str, Any]) -> dict[str, Any]:
    """The rollup delta of a new job's row: its counted fields, none old."""
    return {name: row[name] for name in FIXED} | {f"new_{name}": row[name] for name in CHANGING}


def update_jobs(
    connection: Connection,
    writes: Sequence[JobWrite],
    events: Sequence[JobEvent] = (),
    messages: Sequence[Queued] = (),
) -> dict[str, Any]:
    """Write each job's change where the job is still as read, with its rollup delta; and
    the history rows `events` and outbox `messages` of the jobs written and of jobs no write
    names. The jobs written, each with its row's version now (see `Dialect.update_jobs`).
    """
    if not writes and not events and not messages:
        return {}
    return dialect_of(connection).update_jobs(connection, writes, events, messages)


def insert_jobs(
    connection: Connection, rows: Sequence[Mapping[str, Any]], events: Sequence[JobEvent] = ()
) -> dict[str, Any]:
    """Store new jobs' rows (every column of `INSERTED`), with their rollup deltas, and the
    history rows `events`; the jobs stored, each with its row's version (see
    `Dialect.insert_jobs`).
    """
    if not rows:
        return {}
    return dialect_of(connection).insert_jobs(connection, rows, events)


def insert_row(connection: Connection, row: Mapping[str, Any]) -> None:
    """Store one new job's row, with its rollup delta; SQLAlchemy's IntegrityError if a key
    of it is taken.
    """
    dialect_of(connection).insert_job(connection, row)

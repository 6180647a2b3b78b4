"""Queries and writes on jobs and their history, as sync Core functions of a Connection.

Writes lock the job row (FOR UPDATE on PostgreSQL; SQLite has one writer), let the domain
plan the change, and apply it with a compare-and-set on the status that was read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    func,
    insert,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from jobpulse.domain import (
    ACTIVE,
    TERMINAL,
    Actor,
    Job,
    JobEvent,
    JobFilter,
    JobStatus,
    Page,
    Plan,
    StopReason,
)
from jobpulse.errors import InvalidCursorError, NotFoundError
from jobpulse.storage.tables import job_events, jobs

_JOB_FIELDS = tuple(f.name for f in fields(Job))
_EVENT_FIELDS = tuple(f.name for f in fields(JobEvent) if f.name != "id")

_UPDATE_GUARDED = update(jobs).where(
    jobs.c.id == bindparam("b_id"), jobs.c.status == bindparam("b_expected")
)
_INSERT_EVENT = insert(job_events)


def to_job(row: Row[Any] | Mapping[str, Any]) -> Job:
    """The domain Job for a row of `jobs`."""
    mapping = row._mapping if isinstance(row, Row) else row
    values = {name: mapping[name] for name in _JOB_FIELDS}
    values["status"] = JobStatus(values["status"])
    if values["stop_reason"] is not None:
        values["stop_reason"] = StopReason(values["stop_reason"])
    return Job(**values)


def to_event(row: Row[Any]) -> JobEvent:
    """The domain JobEvent for a row of `job_events`."""
    values = dict(row._mapping)
    return JobEvent(
        **values
        | {
            "from_status": values["from_status"] and JobStatus(values["from_status"]),
            "to_status": JobStatus(values["to_status"]),
            "stop_reason": values["stop_reason"] and StopReason(values["stop_reason"]),
        }
    )


def _column_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Job field values as column values, keeping the source_id column in step."""
    columns = dict(values)
    if "metadata" in values:
        source = values["metadata"].get("source_id")
        columns["source_id"] = None if source is None else str(source)
    return columns


def _visible(actor: Actor) -> ColumnElement[bool]:
    """Rows of `jobs` the actor may see: its own, or its organization's for an admin."""
    clause = jobs.c.organization_id == actor.organization_id
    if not actor.is_admin:
        clause = and_(clause, jobs.c.user_id == actor.user_id)
    return clause


def _insert_event(connection: Connection, event: JobEvent) -> None:
    connection.execute(_INSERT_EVENT, {name: getattr(event, name) for name in _EVENT_FIELDS})


def insert_job(connection: Connection, job: Job, idempotency_key: str | None) -> tuple[Job, bool]:
    """Store a new job and its creation event; (job, created), or the earlier job for the key."""
    if idempotency_key is not None:
        earlier = _find_by_key(connection, job, idempotency_key)
        if earlier is not None:
            return earlier, False
    row = _column_values({name: getattr(job, name) for name in _JOB_FIELDS})
    row["idempotency_key"] = idempotency_key
    try:
        with connection.begin_nested():
            connection.execute(insert(jobs), row)
    except IntegrityError:
        if idempotency_key is None:
            raise
        earlier = _find_by_key(connection, job, idempotency_key)
        if earlier is None:
            raise
        return earlier, False
    _insert_event(
        connection,
        JobEvent(
            job_id=job.id,
            from_status=None,
            to_status=job.status,
            at=job.created_at,
            reason="created",
            actor=job.user_id,
        ),
    )
    return job, True


def _find_by_key(connection: Connection, job: Job, key: str) -> Job | None:
    row = connection.execute(
        select(jobs).where(
            jobs.c.organization_id == job.organization_id,
            jobs.c.user_id == job.user_id,
            jobs.c.idempotency_key == key,
        )
    ).first()
    return None if row is None else to_job(row)


def _select_job(actor: Actor, job_id: str) -> Select[Any]:
    return select(jobs).where(jobs.c.id == job_id, _visible(actor))


def get_job(connection: Connection, actor: Actor, job_id: str) -> Job:
    """The job, if the actor may see it."""
    row = connection.execute(_select_job(actor, job_id)).first()
    if row is None:
        raise NotFoundError(f"job {job_id} not found")
    return to_job(row)


def apply_plan(
    connection: Connection, actor: Actor, job_id: str, planner: Callable[[Job], Plan]
) -> tuple[Job, Plan]:
    """Lock the job, plan the change, write it; the job as it now is, and the plan."""
    row = connection.execute(_select_job(actor, job_id).with_for_update()).first()
    if row is None:
        raise NotFoundError(f"job {job_id} not found")
    job = to_job(row)
    plan = planner(job)
    if plan.values:
        params = _column_values(plan.values) | {"b_id": job.id, "b_expected": plan.expected}
        result = connection.execute(_UPDATE_GUARDED, params)
        if result.rowcount != 1:
            # Under the row lock only a concurrent writer outside jobpulse can cause this.
            raise RuntimeError(f"job {job.id} changed while locked")
        job = replace(job, **plan.values)
    if plan.event is not None:
        _insert_event(connection, plan.event)
    return job, plan


def delete_job(connection: Connection, actor: Actor, job_id: str) -> None:
    """Delete the job and its history."""
    result = connection.execute(jobs.delete().where(jobs.c.id == job_id, _visible(actor)))
    if result.rowcount == 0:
        raise NotFoundError(f"job {job_id} not found")


def list_events(connection: Connection, actor: Actor, job_id: str) -> list[JobEvent]:
    """The job's history, oldest first."""
    get_job(connection, actor, job_id)
    rows = connection.execute(
        select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
    )
    return [to_event(row) for row in rows]


def _filtered(dialect: str, actor: Actor, query: JobFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses for the actor's view under `query`."""
    clauses = [_visible(actor)]
    equal = {
        jobs.c.job_type: query.job_type,
        jobs.c.background: query.background,
        jobs.c.source_id: query.source_id,
        jobs.c.stop_reason: query.stop_reason,
        jobs.c.user_id: query.user_id,
    }
    clauses += [column == value for column, value in equal.items() if value is not None]
    if query.statuses is not None:
        clauses.append(jobs.c.status.in_(sorted(query.statuses)))
    if query.active is not None:
        clauses.append(jobs.c.status.in_(sorted(ACTIVE if query.active else TERMINAL)))
    if query.stuck is not None:
        clauses.append(
            jobs.c.stuck_since.is_not(None) if query.stuck else jobs.c.stuck_since.is_(None)
        )
    if query.created_after is not None:
        clauses.append(jobs.c.created_at > query.created_after)
    if query.created_before is not None:
        clauses.append(jobs.c.created_at < query.created_before)
    clauses += [_metadata_equals(dialect, key, value) for key, value in query.metadata.items()]
    return clauses


def _metadata_equals(dialect: str, key: str, value: str) -> ColumnElement[bool]:
    """metadata[key] is the string `value` (a number or boolean never matches)."""
    column = jobs.c["metadata"]
    if dialect == "postgresql":
        return column.op("@>")(type_coerce({key: value}, JSONB))
    path = f'$."{key}"'  # JobFilter admits only keys that need no escaping
    return and_(func.json_extract(column, path) == value, func.json_type(column, path) == "text")


def _cursor(connection: Connection, actor: Actor, job_id: str) -> tuple[Any, str]:
    row = connection.execute(
        select(jobs.c.created_at, jobs.c.id).where(jobs.c.id == job_id, _visible(actor))
    ).first()
    if row is None:
        raise InvalidCursorError(f"cursor {job_id!r} is not a job you can see")
    return row.created_at, row.id


def list_jobs(connection: Connection, actor: Actor, query: JobFilter, page: Page) -> list[Job]:
    """One page of the actor's jobs under `query`, the page next to the cursor."""
    clauses = _filtered(connection.dialect.name, actor, query)
    order = tuple_(jobs.c.created_at, jobs.c.id)
    if page.before is not None:
        clauses.append(order < _cursor(connection, actor, page.before))
    if page.after is not None:
        clauses.append(order > _cursor(connection, actor, page.after))
    backwards = page.reads_backwards
    keys = (jobs.c.created_at, jobs.c.id)
    statement = (
        select(jobs)
        .where(*clauses)
        .order_by(*(key.desc() if backwards else key.asc() for key in keys))
        .limit(page.limit)
    )
    found = [to_job(row) for row in connection.execute(statement)]
    return found[::-1] if backwards == page.ascending else found


def count_jobs(connection: Connection, actor: Actor, query: JobFilter) -> dict[JobStatus, int]:
    """How many of the actor's jobs under `query` are in each status."""
    rows = connection.execute(
        select(jobs.c.status, func.count())
        .where(*_filtered(connection.dialect.name, actor, query))
        .group_by(jobs.c.status)
    )
    counts = dict.fromkeys(JobStatus, 0)
    for status, number in rows:
        counts[JobStatus(status)] = number
    return counts

"""Queries and writes on jobs and their history, as sync Core functions of a Connection.

Changes to existing jobs go through storage/transitions.py: lock, plan, write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.exc import IntegrityError

from jobpulse.domain import ACTIVE, TERMINAL, Actor, Job, JobEvent, JobStatus, StopReason
from jobpulse.errors import InvalidCursorError, NotFoundError
from jobpulse.listing import JobFilter, Page
from jobpulse.storage import prepared
from jobpulse.storage.changes import JOB_FIELDS, column_values, insert_row
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.feature_tables import llm_usage
from jobpulse.storage.tables import job_events, jobs
from jobpulse.storage.usage_rollups import deleting_calls, remove_from_rollups, take_out_calls

T = TypeVar("T")
P = ParamSpec("P")
#: The columns of a JobEvent; those it is written with (its id is the table's).
EVENT_COLUMNS = tuple(f.name for f in fields(JobEvent))
EVENT_FIELDS = tuple(name for name in EVENT_COLUMNS if name != "id")
_STATUSES = {status.value: status for status in JobStatus}
_STOP_REASONS = {reason.value: reason for reason in StopReason}

#: The columns of a Job, in the order of its fields.
SELECT_JOB = select(*(jobs.c[name] for name in JOB_FIELDS))
#: A job by id in the actor's view, for a member (False) and for an admin (True).
_JOB_BY_ID = {
    False: SELECT_JOB.where(
        jobs.c.id == bindparam("b_id"),
        jobs.c.organization_id == bindparam("b_org"),
        jobs.c.user_id == bindparam("b_user"),
    ),
    True: SELECT_JOB.where(
        jobs.c.id == bindparam("b_id"), jobs.c.organization_id == bindparam("b_org")
    ),
}
#: A job by id, locked until the transaction ends (visibility is the caller's to check).
LOCK_ONE = SELECT_JOB.where(jobs.c.id == bindparam("b_id")).with_for_update()
_INSERT_EVENT = insert(job_events)


_STATUS_AT = JOB_FIELDS.index("status")
_STOP_REASON_AT = JOB_FIELDS.index("stop_reason")


def to_job(row: Sequence[Any]) -> Job:
    """The domain Job for a row of `SELECT_JOB`'s columns (listings make many: keep it lean)."""
    values = list(row)
    values[_STATUS_AT] = _STATUSES[values[_STATUS_AT]]
    if (reason := values[_STOP_REASON_AT]) is not None:
        values[_STOP_REASON_AT] = _STOP_REASONS[reason]
    return Job(*values)


def to_event(values: Mapping[Any, Any]) -> JobEvent:
    """The domain JobEvent for a row of `job_events` (its mapping; other columns ignored)."""
    return JobEvent(
        **{name: values[name] for name in EVENT_COLUMNS}
        | {
            "from_status": values["from_status"] and JobStatus(values["from_status"]),
            "to_status": JobStatus(values["to_status"]),
            "stop_reason": values["stop_reason"] and StopReason(values["stop_reason"]),
        }
    )


def _visible(actor: Actor) -> ColumnElement[bool]:
    """Rows of `jobs` the actor may see: its own, or its organization's for an admin."""
    clause = jobs.c.organization_id == actor.organization_id
    if not actor.is_admin:
        clause = and_(clause, jobs.c.user_id == actor.user_id)
    return clause


def insert_events(connection: Connection, events: Sequence[JobEvent]) -> None:
    """Write history rows, in the caller's transaction (one batch on the driver)."""
    if len(events) == 1:
        prepared.write(connection, _INSERT_EVENT, event_row(events[0]))
    elif events:
        prepared.write_many(connection, _INSERT_EVENT, [event_row(event) for event in events])


def event_row(event: JobEvent) -> dict[str, Any]:
    """A history row's column values (EVENT_FIELDS)."""
    return {name: getattr(event, name) for name in EVENT_FIELDS}


def insert_job(connection: Connection, job: Job, idempotency_key: str | None) -> tuple[Job, bool]:
    """Store a new job and its creation event; (job, created), or the earlier job for the key."""
    if idempotency_key is not None:
        earlier = _find_by_key(connection, job, idempotency_key)
        if earlier is not None:
            return earlier, False
    row = job_row(job, idempotency_key)
    try:
        with connection.begin_nested():
            insert_row(connection, row)
    except IntegrityError:
        if idempotency_key is None:
            raise
        earlier = _find_by_key(connection, job, idempotency_key)
        if earlier is None:
            raise
        return earlier, False
    insert_events(connection, [creation_event(job)])
    return job, True


def creation_event(job: Job) -> JobEvent:
    """The first event of a job's history."""
    return JobEvent(
        job_id=job.id,
        from_status=None,
        to_status=job.status,
        at=job.created_at,
        reason="created",
        actor=job.user_id,
    )


def job_row(job: Job, idempotency_key: str | None) -> dict[str, Any]:
    """The `jobs` row of a new job."""
    fields = (name for name in JOB_FIELDS if name != "usage")  # none yet: NULL
    return column_values({name: getattr(job, name) for name in fields}) | {
        "idempotency_key": idempotency_key
    }


def _find_by_key(connection: Connection, job: Job, key: str) -> Job | None:
    row = connection.execute(
        SELECT_JOB.where(
            jobs.c.organization_id == job.organization_id,
            jobs.c.user_id == job.user_id,
            jobs.c.idempotency_key == key,
        )
    ).first()
    return None if row is None else to_job(row)


def _scope(actor: Actor) -> dict[str, Any]:
    """The bound values of the actor's view: its organization, and its user for a member."""
    if actor.is_admin:
        return {"b_org": actor.organization_id}
    return {"b_org": actor.organization_id, "b_user": actor.user_id}


def is_job_id(job_id: str) -> bool:
    """Whether `job_id` may name a job: none has a NUL (and PostgreSQL refuses to compare
    with one).
    """
    return "\x00" not in job_id


def sees(actor: Actor, job: Job) -> bool:
    """Whether the actor may see the job: its own, or its organization's for an admin."""
    if job.organization_id != actor.organization_id:
        return False
    return actor.is_admin or job.user_id == actor.user_id


def _find_job(connection: Connection, actor: Actor, job_id: str) -> Job:
    """The job in the actor's view; NotFoundError if none."""
    row = None
    if is_job_id(job_id):
        row = prepared.first(
            connection, _JOB_BY_ID[actor.is_admin], _scope(actor) | {"b_id": job_id}
        )
    if row is None:
        raise NotFoundError(f"job {job_id} not found")
    return to_job(row)


def get_job(connection: Connection, actor: Actor, job_id: str) -> Job:
    """The job, if the actor may see it."""
    return _find_job(connection, actor, job_id)


def for_visible_job(
    connection: Connection,
    actor: Actor,
    job_id: str,
    then: Callable[Concatenate[Connection, str, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """`then(connection, job_id, ...)`, if the actor may see the job (NotFoundError if not)."""
    _find_job(connection, actor, job_id)
    return then(connection, job_id, *args, **kwargs)


#: A job's LLM calls, deleted with it (before it: the usage rollups give back their share).
_DELETE_CALLS = deleting_calls(llm_usage.c.job_id == bindparam("b_job"))


def delete_job(connection: Connection, actor: Actor, job_id: str) -> None:
    """Delete the job, its history and its LLM calls (taken out of the usage rollups)."""
    _find_job(connection, actor, job_id)
    gone = take_out_calls(connection, _DELETE_CALLS, {"b_job": job_id})
    result = connection.execute(jobs.delete().where(jobs.c.id == job_id, _visible(actor)))
    if result.rowcount == 0:  # deleted meanwhile, calls and all: nothing was written
        raise NotFoundError(f"job {job_id} not found")
    remove_from_rollups(connection, gone)


def list_events(connection: Connection, actor: Actor, job_id: str) -> list[JobEvent]:
    """The job's history, oldest first."""
    get_job(connection, actor, job_id)
    rows = connection.execute(
        select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
    )
    return [to_event(row._mapping) for row in rows]


#: Filters that compare one column with one value.
_EQUAL_FILTERS = ("job_type", "background", "source_id", "stop_reason", "user_id", "job_id")
#: The column of each filter named otherwise.
_FILTER_COLUMNS = {"job_id": "id"}


def _conditions(actor: Actor, query: JobFilter) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The shape of the actor's view under `query` (hashable) and its parameter values.

    Statements are built once per shape and cached, so a listing only binds values.
    """
    shape: list[Any] = [actor.is_admin]
    params = _scope(actor)
    for name in _EQUAL_FILTERS:
        if (value := getattr(query, name)) is not None:
            shape.append(name)
            params[f"b_{name}"] = value
    if query.statuses is not None:
        shape.append("statuses")
        params["b_statuses"] = sorted(query.statuses)
    for name in ("created_after", "created_before", "model"):
        if (value := getattr(query, name)) is not None:
            shape.append(name)
            params[f"b_{name}"] = value
    shape += [("active", query.active), ("stuck", query.stuck)]
    for number, (key, value) in enumerate(sorted(query.metadata.items())):
        shape.append(("metadata", key))
        params[f"b_meta_{number}"] = value
    return tuple(shape), params


@functools.lru_cache(maxsize=512)
def _where(dialect: Dialect, shape: tuple[Any, ...]) -> tuple[ColumnElement[bool], ...]:
    """The WHERE clauses for a shape from `_conditions`."""
    admin, *parts = shape
    clauses = [jobs.c.organization_id == bindparam("b_org")]
    if not admin:
        clauses.append(jobs.c.user_id == bindparam("b_user"))
    metadata_filters = 0
    for part in parts:
        if part == "statuses":
            clauses.append(jobs.c.status.in_(bindparam("b_statuses", expanding=True)))
        elif part == "created_after":
            clauses.append(jobs.c.created_at > bindparam("b_created_after"))
        elif part == "created_before":
            clauses.append(jobs.c.created_at < bindparam("b_created_before"))
        elif part == "model":
            clauses.append(_has_model())
        elif isinstance(part, str):
            column = jobs.c[_FILTER_COLUMNS.get(part, part)]
            clauses.append(column == bindparam(f"b_{part}"))
        elif part[0] == "metadata":
            clauses.append(dialect.metadata_equals(part[1], f"b_meta_{metadata_filters}"))
            metadata_filters += 1
        elif part[1] is not None:
            clauses.append(_flag(*part))
    return tuple(clauses)


def _has_model() -> ColumnElement[bool]:
    """The job has an LLM call of the model `b_model`."""
    calls = llm_usage.c
    return exists().where(calls.job_id == jobs.c.id, calls.model == bindparam("b_model"))


def job_filter_clauses(
    dialect: Dialect, actor: Actor, query: JobFilter
) -> tuple[tuple[ColumnElement[bool], ...], dict[str, Any]]:
    """WHERE clauses on `jobs` for the actor's view under `query`, and their bound values."""
    shape, params = _conditions(actor, query)
    return _where(dialect, shape), params


def _flag(name: str, wanted: bool) -> ColumnElement[bool]:
    """The `active` or `stuck` filter."""
    if name == "active":
        return jobs.c.status.in_(sorted(ACTIVE if wanted else TERMINAL))
    return jobs.c.stuck_since.is_not(None) if wanted else jobs.c.stuck_since.is_(None)


_CURSOR_JOBS = jobs.alias("cursor_job")
_CURSOR = {
    admin: select(jobs.c.id).where(
        *statement.whereclause.clauses  # type: ignore[union-attr]
    )
    for admin, statement in _JOB_BY_ID.items()
}


def _check_cursor(connection: Connection, actor: Actor, job_id: str) -> None:
    params = _scope(actor) | {"b_id": job_id}
    if connection.execute(_CURSOR[actor.is_admin], params).first() is None:
        raise InvalidCursorError(f"cursor {job_id!r} is not a job you can see")


def _cursor_key(side: str, admin: bool) -> ColumnElement[Any]:
    """(created_at, id) of the cursor job, looked up inside the page query itself.

    A cursor the actor cannot see yields NULL, so no rows; list_jobs then says why.
    """
    visible = [
        _CURSOR_JOBS.c.id == bindparam(f"b_{side}"),
        _CURSOR_JOBS.c.organization_id == bindparam("b_org"),
    ]
    if not admin:
        visible.append(_CURSOR_JOBS.c.user_id == bindparam("b_user"))
    created_at = select(_CURSOR_JOBS.c.created_at).where(*visible).scalar_subquery()
    return tuple_(created_at, bindparam(f"b_{side}", type_=jobs.c.id.type))


@functools.lru_cache(maxsize=512)
def _page_statement(
    dialect: Dialect, shape: tuple[Any, ...], before: bool, after: bool, backwards: bool
) -> Select[Any]:
    order = tuple_(jobs.c.created_at, jobs.c.id)
    clauses = list(_where(dialect, shape))
    if before:
        clauses.append(order < _cursor_key("before", admin=shape[0]))
    if after:
        clauses.append(order > _cursor_key("after", admin=shape[0]))
    keys = (jobs.c.created_at, jobs.c.id)
    return (
        SELECT_JOB.where(*clauses)
        .order_by(*(key.desc() if backwards else key.asc() for key in keys))
        .limit(bindparam("b_limit", type_=Integer()))
    )


def list_jobs(connection: Connection, actor: Actor, query: JobFilter, page: Page) -> list[Job]:
    """One page of the actor's jobs under `query`, the page next to the cursor."""
    shape, params = _conditions(actor, query)
    cursors = {f"b_{side}": getattr(page, side) for side in ("before", "after")}
    statement = _page_statement(
        dialect_of(connection),
        shape,
        page.before is not None,
        page.after is not None,
        page.reads_backwards,
    )
    rows = connection.execute(statement, params | cursors | {"b_limit": page.limit}).all()
    if not rows:  # an empty page may be an invisible cursor: say so
        for job_id in filter(None, cursors.values()):
            _check_cursor(connection, actor, job_id)
    found = [to_job(row) for row in rows]
    return found[::-1] if page.reads_backwards == page.ascending else found


@functools.lru_cache(maxsize=512)
def _count_statement(dialect: Dialect, shape: tuple[Any, ...]) -> Select[Any]:
    return (
        select(jobs.c.status, func.count()).where(*_where(dialect, shape)).group_by(jobs.c.status)
    )


def count_jobs(connection: Connection, actor: Actor, query: JobFilter) -> dict[JobStatus, int]:
    """How many of the actor's jobs under `query` are in each status."""
    shape, params = _conditions(actor, query)
    rows = connection.execute(_count_statement(dialect_of(connection), shape), params)
    counts = dict.fromkeys(JobStatus, 0)
    for status, number in rows:
        counts[_STATUSES[status]] = number
    return counts

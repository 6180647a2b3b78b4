"""LLM calls stored with their job's totals (`jobs.usage`) in one transaction.

A record locks its job (FOR UPDATE on PostgreSQL; SQLite has one writer), adds the call to
the totals as locked and writes them back, so concurrent records of one job, from any number
of replicas, add up exactly. Records of one writer batch go together: one lock of all their
jobs, one insert of the calls, one update a job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select, tuple_, update

from jobpulse.domain import Actor, Job, JobEvent
from jobpulse.errors import NotFoundError
from jobpulse.listing import JobFilter
from jobpulse.stats.windows import Window
from jobpulse.storage import prepared
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.feature_tables import llm_usage
from jobpulse.storage.recent import recent_jobs
from jobpulse.storage.repository import for_visible_job, insert_events, is_job_id, sees, to_job
from jobpulse.storage.tables import jobs
from jobpulse.storage.usage_figures import usage_figures
from jobpulse.storage.usage_rollups import add_to_rollups
from jobpulse.usage.figures import UsageFigures
from jobpulse.usage.rules import Call, CostSource, add_call, is_late, late_note

if TYPE_CHECKING:
    from jobpulse.storage.engine import Database

_CALL_COLUMNS = (
    "id",
    "provider",
    "model",
    "recorded_at",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_pusd",
    "cost_source",
    "ttft_ns",
    "duration_ns",
    "late",
)
_SELECT_CALLS = select(*(llm_usage.c[name] for name in _CALL_COLUMNS))
_FIND_CALL = _SELECT_CALLS.where(
    llm_usage.c.job_id == bindparam("b_job"), llm_usage.c.id == bindparam("b_id")
)
_INSERT_CALL = insert(llm_usage)
#: A job's totals (the SET column is the parameter `usage`, see prepared.write_many).
_SET_USAGE = update(jobs).where(jobs.c.id == bindparam("b_id"))


@dataclass(frozen=True, slots=True)
class Recording:
    """One call to record, which a writer batch may record with others."""

    actor: Actor
    job_id: str
    call: Call
    #: The call's id was made for it: no earlier record can have it (no look-up).
    fresh: bool = False

    def __call__(self, connection: Connection) -> tuple[Job, Call, bool]:
        """Alone: see `record_calls`."""
        [(ok, outcome)] = record_calls(connection, [self])
        if not ok:
            raise outcome
        return outcome  # type: ignore[no-any-return]

    @property
    def locked_job(self) -> str | None:
        """The job it locks (see group_commit): none for an id no job has."""
        return self.job_id if is_job_id(self.job_id) else None

    @staticmethod
    def is_shared_on(dialect: Dialect) -> bool:
        """Records of one batch share their statements on every database: on SQLite too,
        where a statement costs no round trip but its Python does (16 records of one job
        then write one row of totals and one of each rollup).
        """
        return True

    @staticmethod
    def run_together(
        connection: Connection, requests: Sequence[Recording]
    ) -> list[tuple[bool, Any]]:
        """Record `requests` in the caller's transaction, a few statements for all of them."""
        return record_calls(connection, requests)


def _to_call(row: Any) -> Call:
    values = dict(zip(_CALL_COLUMNS, row, strict=True))
    source = values["cost_source"]
    return Call(**values | {"cost_source": None if source is None else CostSource(source)})


def _recorded(connection: Connection, requests: Sequence[Recording]) -> dict[tuple[str, str], Call]:
    """The calls of `requests` already stored, by (job id, call id)."""
    keys = {
        (r.job_id, r.call.id)
        for r in requests
        if not r.fresh and is_job_id(r.job_id) and is_job_id(r.call.id)
    }
    if not keys:
        return {}
    if len(keys) == 1:
        [(job_id, call_id)] = keys
        row = prepared.first(connection, _FIND_CALL, {"b_job": job_id, "b_id": call_id})
        return {} if row is None else {(job_id, call_id): _to_call(row)}
    statement = _SELECT_CALLS.add_columns(llm_usage.c.job_id).where(
        tuple_(llm_usage.c.job_id, llm_usage.c.id).in_(sorted(keys))
    )
    return {(row[-1], row[0]): _to_call(row[:-1]) for row in connection.execute(statement)}


def record_calls(connection: Connection, requests: Sequence[Recording]) -> list[tuple[bool, Any]]:
    """Lock the jobs, add each call to its job's totals in queue order, store calls and
    totals; each request's outcome: (True, (job, call, new)) or (False, NotFoundError).
    """
    ids = sorted({request.job_id for request in requests if is_job_id(request.job_id)})
    found = dialect_of(connection).lock_jobs(connection, ids) if ids else []
    locked = {job.id: job for job in map(to_job, found)}
    stored = _recorded(connection, requests)
    changed: set[str] = set()
    rows: list[dict[str, Any]] = []
    recorded: list[tuple[str, str, Call]] = []
    events: list[JobEvent] = []
    outcomes: list[tuple[bool, Any]] = []
    for request in requests:
        job = locked.get(request.job_id)
        if job is None or not sees(request.actor, job):
            outcomes.append((False, NotFoundError(f"job {request.job_id} not found")))
            continue
        key = (job.id, request.call.id)
        if key in stored:
            outcomes.append((True, (job, stored[key], False)))
            continue
        call = replace(request.call, late=is_late(job))
        job = replace(job, usage=add_call(job.usage, call))
        locked[job.id] = job
        stored[key] = call
        changed.add(job.id)
        rows.append(_row(job, call))
        recorded.append((job.organization_id, job.job_type, call))
        if call.late:
            events.append(late_note(job, call, request.actor.user_id))
        outcomes.append((True, (job, call, True)))
    if rows:
        prepared.write_many(connection, _INSERT_CALL, rows)
        params = [{"b_id": job_id, "usage": locked[job_id].usage} for job_id in sorted(changed)]
        prepared.write_many(connection, _SET_USAGE, params)
        recent_jobs(connection).forget(changed)  # their next change reads them anew
        insert_events(connection, events)
        add_to_rollups(connection, recorded)
    return outcomes


def _row(job: Job, call: Call) -> dict[str, Any]:
    values = {name: getattr(call, name) for name in _CALL_COLUMNS}
    source = call.cost_source
    return values | {
        "job_id": job.id,
        "organization_id": job.organization_id,
        "job_type": job.job_type,
        "cost_source": None if source is None else source.value,
    }


def list_calls(connection: Connection, job_id: str) -> list[Call]:
    """The job's calls, in the order they were recorded."""
    rows = connection.execute(
        _SELECT_CALLS.where(llm_usage.c.job_id == job_id).order_by(
            llm_usage.c.recorded_at, llm_usage.c.id
        )
    )
    return [_to_call(row) for row in rows]


def _has_calls(connection: Connection, organization_id: str, window: Window) -> bool:
    u = llm_usage.c
    found = select(u.job_id).where(
        u.organization_id == organization_id,
        u.recorded_at >= window.since,
        u.recorded_at < window.until,
    )
    return connection.execute(found.limit(1)).first() is not None


class SqlUsageStore:
    """The UsageStore on SQL (a base of SqlJobStore, whose `database` it uses)."""

    database: Database

    async def record_usage(
        self, actor: Actor, job_id: str, call: Call, fresh: bool = False
    ) -> tuple[Job, Call, bool]:
        recording = Recording(actor, job_id, call, fresh)
        result: tuple[Job, Call, bool] = await self.database.submit(recording)
        return result

    async def list_usage(self, actor: Actor, job_id: str) -> list[Call]:
        result: list[Call] = await self.database.read(for_visible_job, actor, job_id, list_calls)
        return result

    async def has_usage(self, organization_id: str, window: Window) -> bool:
        return await self.database.read(_has_calls, organization_id, window)

    async def usage_stats(self, actor: Actor, query: JobFilter, window: Window) -> UsageFigures:
        return await self.database.scan(usage_figures, actor, query, window)

"""The store under test, on SQLite and on PostgreSQL (see `database_url`), and the inputs the
conformance suite hands it: jobs, planners and webhooks built as jobpulse builds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import pytest

from jobpulse.config import Settings
from jobpulse.domain import Actor, Job, JobChange, JobStatus, Plan, StopReason, plan_change
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.store import JobStore, Planner
from jobpulse.webhooks import payload

T = TypeVar("T")

#: The moment the suite's jobs start from (every operation takes its clock from the caller).
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: Where the suite's webhooks go.
HOOK = "https://hooks.example.com/jobs"
ALICE = Actor("org-a", "alice")
BOB = Actor("org-a", "bob")
ADMIN = Actor("org-a", "root", is_admin=True)
EVE = Actor("org-b", "eve")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[JobStore]:
    """A store on a fresh, migrated database."""
    opened = open_store(Settings(database_url=database_url))
    yield opened
    await opened.close()


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[JobStore]:
    """A second store on the same database: another process, or another replica."""
    opened = open_store(Settings(database_url=database_url))
    yield opened
    await opened.close()


def new_job(
    actor: Actor = ALICE,
    status: JobStatus = JobStatus.CREATED,
    at: datetime = T0,
    **fields: Any,
) -> Job:
    """A job as JobManager builds one: owned by `actor`, created at `at`."""
    started = at if status == JobStatus.RUNNING else None
    values: dict[str, Any] = {"started_at": started} | fields
    return Job(
        id=f"job-{uuid.uuid4()}",
        organization_id=actor.organization_id,
        user_id=actor.user_id,
        job_type=values.pop("job_type", "job"),
        status=status,
        created_at=at,
        updated_at=at,
        **values,
    )


async def ended_with_callback(
    store: JobStore, at: datetime = T0, url: str = HOOK, actor: Actor = ALICE, **fields: Any
) -> Job:
    """A running job of `actor`'s created at `at` that failed a second later, its callback
    queued with the change (as JobManager queues it).
    """
    job = await created(store, actor, status=JobStatus.RUNNING, at=at, callback_url=url, **fields)
    end = at + seconds(1)
    planner = change(stop_reason=StopReason.ERROR, at=end, by=actor.user_id)

    def with_callback(current: Job) -> Plan:
        plan = planner(current)
        message = payload.callback(replace(current, **plan.values), end)
        return replace(plan, outbox=(message,))

    ended, _plan = await store.apply(actor, job.id, with_callback)
    return ended


async def created(store: JobStore, *args: Any, **fields: Any) -> Job:
    """A job stored through `create` (arguments as `new_job`)."""
    job, made = await store.create(new_job(*args, **fields), None)
    assert made
    return job


def change(
    status: JobStatus | None = None,
    stop_reason: StopReason | None = None,
    *,
    at: datetime = T0,
    by: str = "alice",
    **fields: Any,
) -> Planner:
    """The planner of a change, as JobManager.update_job makes it."""
    wanted = JobChange(status=status, stop_reason=stop_reason, **fields)
    return partial(plan_change, change=wanted, now=at, actor=by)


def seconds(number: float) -> timedelta:
    return timedelta(seconds=number)


async def eventually(read: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """What `read` answers once `done` holds (within 10 s): for what another connection or
    transaction makes visible a moment after its commit.
    """
    for _ in range(200):
        if done(found := await read()):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"still not there after 10 s: {found}")


async def until(condition: Callable[[], bool]) -> None:
    """Return once `condition` holds (within 10 s)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("still not so after 10 s")


@contextlib.asynccontextmanager
async def listening(store: JobStore, channel: str) -> AsyncIterator[list[str | None]]:
    """What the store's `listen` on `channel` hears, once it listens; where the database
    announces nothing, `listen` has returned (within 5 s) and nothing is heard.
    """
    heard: list[str | None] = []
    task = asyncio.create_task(store.listen(channel, heard.append))
    try:
        if store.pushes_events:
            await until(lambda: None in heard)  # connected (see storage/postgres/listening.py)
        else:
            await asyncio.wait_for(task, 5)
        yield heard
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

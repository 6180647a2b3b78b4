"""JobManager on real SQLite and PostgreSQL: transitions, history, metadata, tenancy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from jobpulse import (
    Actor,
    InvalidTransitionError,
    JobManager,
    JobStatus,
    NotFoundError,
    ValidationError,
)

S = JobStatus


async def test_create_sets_defaults(manager: JobManager, alice: Actor) -> None:
    job = await manager.create_job(alice)
    assert job.id.startswith("job-")
    assert (job.status, job.job_type, job.background, job.metadata) == (S.CREATED, "job", False, {})
    assert job.created_at.tzinfo is not None
    assert await manager.get_job(alice, job.id) == job
    [event] = await manager.list_events(alice, job.id)
    assert (event.from_status, event.to_status, event.applied) == (None, S.CREATED, True)


async def test_create_running_stamps_start_and_deadline(manager: JobManager, alice: Actor) -> None:
    job = await manager.create_job(
        alice, status="running", timeout_s=60, heartbeat_timeout_s=5, background=True
    )
    stored = await manager.get_job(alice, job.id)
    assert stored.started_at == stored.created_at
    assert stored.deadline_at == stored.created_at + timedelta(seconds=60)
    assert (stored.heartbeat_timeout_s, stored.background) == (5.0, True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "completed"}, "created, pending or running"),
        ({"status": "Running"}, "unknown status"),
        ({"metadata": ["not", "an", "object"]}, "JSON object"),
        ({"metadata": {"k": "x" * 70_000}}, "limit is 65536"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": 5, "deadline_at": datetime(2030, 1, 1, tzinfo=UTC)}, "not both"),
        ({"deadline_at": datetime(2030, 1, 1)}, "timezone"),
        ({"callback_url": "ftp://example.com/x"}, "http"),
        ({"job_type": ""}, "job_type"),
        ({"job_type": "a\x00b"}, "NUL"),
        ({"metadata": {"k": "a\x00b"}}, "NUL"),
        ({"metadata": {"k\x00": 1}}, "NUL"),
        ({"metadata": {"k": ["\ud800"]}}, "surrogate"),
        ({"callback_url": "http://[::1"}, "http"),
    ],
)
async def test_bad_create_is_refused_and_stores_nothing(
    manager: JobManager, alice: Actor, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        await manager.create_job(alice, **fields)  # type: ignore[arg-type]
    assert (await manager.count_jobs(alice)).total == 0


async def test_idempotency_key_returns_the_same_job(manager: JobManager, alice: Actor) -> None:
    first, second = await asyncio.gather(
        manager.create_job(alice, idempotency_key="k1", job_type="a"),
        manager.create_job(alice, idempotency_key="k1", job_type="a"),
    )
    again = await manager.create_job(alice, idempotency_key="k1")
    assert first.id == second.id == again.id
    assert len(await manager.list_events(alice, first.id)) == 1
    bob = Actor("org-a", "bob")
    assert (await manager.create_job(bob, idempotency_key="k1")).id != first.id


async def test_a_job_lives_its_life(manager: JobManager, alice: Actor) -> None:
    job = await manager.create_job(alice, status="pending", metadata={"keep": 1, "drop": 2})
    running = await manager.update_job(alice, job.id, status="running", metadata={"drop": None})
    assert running.started_at is not None
    assert running.metadata == {"keep": 1}
    await manager.record_first_token(alice, job.id)
    done = await manager.update_job(alice, job.id, stop_reason="end_turn", metadata={"n": 3})
    assert (done.status, done.stop_reason) == (S.COMPLETED, "end_turn")
    assert done.completed_at is not None
    assert done.ttft_ns is not None
    assert done.total_duration_ns is not None
    assert 0 <= done.ttft_ns <= done.total_duration_ns
    assert await manager.get_job(alice, job.id) == done
    history = [
        (e.from_status, e.to_status, e.applied) for e in await manager.list_events(alice, job.id)
    ]
    assert history == [
        (None, S.PENDING, True),
        (S.PENDING, S.RUNNING, True),
        (S.RUNNING, S.COMPLETED, True),
    ]


async def test_terminal_jobs_never_change(manager: JobManager, alice: Actor) -> None:
    job = await manager.create_job(alice, status="running")
    failed = await manager.update_job(alice, job.id, stop_reason="llm_api_error")
    for status in ("running", "completed", "cancelled", "failed"):
        with pytest.raises(InvalidTransitionError) as caught:
            await manager.update_job(alice, job.id, status=status, metadata={"lost": True})
        assert (caught.value.current_status, caught.value.requested_status) == (S.FAILED, status)
    with pytest.raises(InvalidTransitionError):
        await manager.cancel_job(alice, job.id)
    assert await manager.get_job(alice, job.id) == failed
    events = await manager.list_events(alice, job.id)
    assert [e.applied for e in events] == [True, True, False, False, False, False, False]
    assert events[-1].stop_reason == "cancelled"


async def test_no_job_returns_to_created_or_repeats_its_status(
    manager: JobManager, alice: Actor
) -> None:
    job = await manager.create_job(alice, status="pending")
    for status in ("created", "pending"):
        with pytest.raises(InvalidTransitionError):
            await manager.update_job(alice, job.id, status=status)
    assert (await manager.get_job(alice, job.id)).status == S.PENDING


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"status": "completed", "stop_reason": "error"}, "means status failed"),
        ({"status": "COMPLETED"}, "unknown status"),
        ({"stop_reason": "finished"}, "unknown stop_reason"),
        ({"ttft_ns": -5}, "must not be negative"),
        ({"total_duration_ns": -1}, "must not be negative"),
        ({"metadata": "text"}, "JSON object"),
        ({"metadata": {"big": "x" * 70_000}}, "limit is 65536"),
        ({"metadata": {"nul": "\x00"}}, "NUL"),
        ({"reason": "why\x00"}, "NUL"),
    ],
)
async def test_bad_update_changes_nothing(
    manager: JobManager, alice: Actor, fields: dict[str, object], error: str
) -> None:
    job = await manager.create_job(alice, status="running", metadata={"a": 1})
    with pytest.raises(ValidationError, match=error):
        await manager.update_job(alice, job.id, **fields)  # type: ignore[arg-type]
    assert await manager.get_job(alice, job.id) == job
    assert len(await manager.list_events(alice, job.id)) == 1


async def test_metadata_that_would_outgrow_64_kib_once_merged_is_refused(
    manager: JobManager, alice: Actor
) -> None:
    half = "x" * 40_000  # each patch fits; the two together do not
    job = await manager.create_job(alice, status="running", metadata={"first": half})
    with pytest.raises(ValidationError, match="metadata once merged is 80024 bytes"):
        await manager.update_job(alice, job.id, status="completed", metadata={"second": half})
    with pytest.raises(ValidationError, match="metadata once merged"):
        await manager.heartbeat(alice, job.id, progress={"second": half})
    stored = await manager.get_job(alice, job.id)
    assert (stored.status, stored.metadata, stored.heartbeat_at) == (
        S.RUNNING,
        {"first": half},
        None,
    )
    assert [event.to_status for event in await manager.list_events(alice, job.id)] == [S.RUNNING]
    # Replacing the big value, or removing it, still works.
    done = await manager.update_job(
        alice, job.id, status="completed", metadata={"first": None, "second": half}
    )
    assert (done.status, done.metadata) == (S.COMPLETED, {"second": half})


async def test_fifty_concurrent_terminal_transitions_apply_once(
    manager: JobManager, alice: Actor
) -> None:
    job = await manager.create_job(alice, status="running")
    targets = ["completed", "failed", "cancelled", "expired"] * 13
    results = await asyncio.gather(
        *(manager.update_job(alice, job.id, status=t) for t in targets[:50]),
        return_exceptions=True,
    )
    applied = [r for r in results if not isinstance(r, BaseException)]
    rejected = [r for r in results if isinstance(r, InvalidTransitionError)]
    assert (len(applied), len(rejected)) == (1, 49)
    final = await manager.get_job(alice, job.id)
    assert final.status == applied[0].status
    terminal_events = (await manager.list_events(alice, job.id))[1:]
    assert sum(e.applied for e in terminal_events) == 1
    assert sum(not e.applied for e in terminal_events) == 49
    assert all(e.from_status == final.status for e in terminal_events if not e.applied)


async def test_concurrent_metadata_merges_lose_no_key(manager: JobManager, alice: Actor) -> None:
    job = await manager.create_job(alice, status="running")
    await asyncio.gather(
        *(manager.update_job(alice, job.id, metadata={f"k{n}": n}) for n in range(30)),
        *(manager.heartbeat(alice, job.id, progress={f"p{n}": n}) for n in range(10)),
    )
    metadata = (await manager.get_job(alice, job.id)).metadata
    assert metadata == {f"k{n}": n for n in range(30)} | {f"p{n}": n for n in range(10)}


async def test_completed_at_is_stamped_once(manager: JobManager, alice: Actor) -> None:
    job = await manager.create_job(alice)
    cancelled = await manager.cancel_job(alice, job.id, reason="user asked")
    assert (cancelled.status, cancelled.stop_reason) == (S.CANCELLED, "cancelled")
    assert cancelled.started_at is None
    assert cancelled.total_duration_ns == (
        (cancelled.completed_at - cancelled.created_at) // timedelta(microseconds=1) * 1000  # type: ignore[operator]
    )
    with pytest.raises(InvalidTransitionError):
        await manager.update_job(alice, job.id, status="expired")
    later = await manager.update_job(alice, job.id, metadata={"note": "after the end"})
    assert later.completed_at == cancelled.completed_at
    assert (await manager.list_events(alice, job.id))[1].reason == "user asked"


async def test_heartbeat_and_timings(manager: JobManager, alice: Actor) -> None:
    job = await manager.create_job(alice, status="running")
    beat = await manager.heartbeat(alice, job.id, progress={"step": 2})
    assert beat.heartbeat_at is not None
    assert beat.metadata == {"step": 2}
    first = await manager.record_first_token(alice, job.id)
    again = await manager.record_first_token(alice, job.id)
    assert first.ttft_ns == again.ttft_ns
    assert (await manager.record_ttft(alice, job.id, 123)).ttft_ns == 123
    assert (await manager.record_duration(alice, job.id, 456)).total_duration_ns == 456
    done = await manager.update_job(alice, job.id, status="completed")
    assert done.total_duration_ns == 456  # measured by the caller, kept
    with pytest.raises(InvalidTransitionError, match="heartbeat"):
        await manager.heartbeat(alice, job.id)
    with pytest.raises(ValidationError):
        await manager.record_ttft(alice, job.id, -1)


async def test_delete_removes_job_and_history(manager: JobManager, alice: Actor) -> None:
    job = await manager.create_job(alice)
    await manager.delete_job(alice, job.id)
    with pytest.raises(NotFoundError):
        await manager.get_job(alice, job.id)
    with pytest.raises(NotFoundError):
        await manager.list_events(alice, job.id)
    with pytest.raises(NotFoundError):
        await manager.delete_job(alice, job.id)


async def test_unknown_job_is_not_found_everywhere(manager: JobManager, alice: Actor) -> None:
    for call in (
        manager.get_job(alice, "job-nope"),
        manager.update_job(alice, "job-nope", status="running"),
        manager.heartbeat(alice, "job-nope"),
        manager.record_first_token(alice, "job-nope"),
        manager.list_events(alice, "job-nope"),
        manager.delete_job(alice, "job-nope"),
    ):
        with pytest.raises(NotFoundError, match="job-nope"):
            await call


@pytest.mark.parametrize(
    ("other", "visible"),
    [
        (Actor("org-a", "alice"), True),
        (Actor("org-a", "bob"), False),
        (Actor("org-a", "root", is_admin=True), True),
        (Actor("org-b", "alice"), False),
        (Actor("org-b", "root", is_admin=True), False),
    ],
)
async def test_tenancy(manager: JobManager, alice: Actor, other: Actor, visible: bool) -> None:
    job = await manager.create_job(alice, status="running")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "get": lambda: manager.get_job(other, job.id),
        "events": lambda: manager.list_events(other, job.id),
        "update": lambda: manager.update_job(other, job.id, metadata={"by": other.user_id}),
    }
    for name, call in calls.items():
        if visible:
            await call()
        else:
            with pytest.raises(NotFoundError):
                await call()
            assert (await manager.get_job(alice, job.id)).metadata == {}, name
    listed = [j.id for j in await manager.list_jobs(other)]
    assert listed == ([job.id] if visible else [])
    assert (await manager.count_jobs(other)).total == int(visible)
    if not visible:
        with pytest.raises(NotFoundError):
            await manager.delete_job(other, job.id)
        assert await manager.get_job(alice, job.id)

"""The LLM batch poller against a fake of both providers' HTTP APIs, on SQLite and PostgreSQL:
every path of the state mapping, results summaries, callbacks, backoff, errors, cancels,
pollers on two replicas, a thousand batches in one round, and keys kept out of sight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobpulse import Actor, JobManager, JobStatus, Settings
from jobpulse.clock import utcnow
from jobpulse.domain import Job
from jobpulse.monitor import providers
from jobpulse.monitor.batch_poller import BatchPoller
from jobpulse.monitor.providers import ProviderClient
from jobpulse.storage import batches
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.tables import outbox
from tests.monitor.test_sweeper import T0, Clock
from tests.providers import ANTHROPIC_KEY, OPENAI_KEY, Answer, FakeProviders, anthropic, openai
from tests.sql import database_of

ALICE = Actor("org-a", "alice")
INTERVAL_S = 60.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    providers = FakeProviders()
    await providers.start()
    yield providers
    await providers.stop()


def batch_settings(database_url: str, fake: FakeProviders, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "anthropic_base_url": fake.base_url,
        "openai_base_url": fake.base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
        "openai_api_key": OPENAI_KEY,
        "batch_poll_interval_s": INTERVAL_S,
    }
    return Settings(**(values | extra))


@dataclass
class Polling:
    """A JobManager and a BatchPoller on one database."""

    jobs: JobManager
    poller: BatchPoller
    client: ProviderClient

    async def add(self, provider: str, batch_id: str, **fields: Any) -> Job:
        metadata = {"provider": provider, "batch_id": batch_id}
        return await self.jobs.create_job(
            ALICE, job_type="llm_batch", status="pending", metadata=metadata, **fields
        )

    async def job(self, job: Job) -> Job:
        return await self.jobs.get_job(ALICE, job.id)

    async def callbacks(self, job: Job) -> list[str]:
        rows = await database_of(self.jobs).read(
            lambda c: c.execute(outbox.select().where(outbox.c.job_id == job.id)).all()
        )
        return [row.event_type for row in rows]

    async def followed(self) -> int:
        return await database_of(self.jobs).read(batches.followed)

    async def until(self, done: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
        """Poll rounds until `done()` (real time), failing after `within_s`."""
        deadline = time.monotonic() + within_s
        while not await done():
            assert time.monotonic() < deadline, "timed out"
            await self.poller.run_once()
            await asyncio.sleep(0.05)


MakePolling = Callable[..., Awaitable[Polling]]


@pytest.fixture
async def make_polling(database_url: str, fake: FakeProviders) -> AsyncIterator[MakePolling]:
    made: list[Polling] = []

    async def make(clock: Callable[[], Any] = utcnow, **extra: Any) -> Polling:
        settings = batch_settings(database_url, fake, **extra)
        jobs = JobManager(open_store(settings), clock, allow_private_callbacks=True)
        client = ProviderClient(settings)
        polling = Polling(jobs, BatchPoller(jobs, settings, client, clock), client)
        made.append(polling)
        return polling

    yield make
    for polling in made:
        await polling.client.close()
        await polling.jobs.close()


def anthropic_results(succeeded: int, errored: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [
        {"custom_id": f"ok-{n}", "result": {"type": "succeeded", "message": {"id": "msg"}}}
        for n in range(succeeded)
    ]
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad prompt"}}
    lines += [
        {"custom_id": f"bad-{n}", "result": {"type": "errored", "error": error}}
        for n in range(errored)
    ]
    return lines


def openai_output(succeeded: int) -> list[dict[str, Any]]:
    return [
        {"id": f"r{n}", "custom_id": f"ok-{n}", "response": {"status_code": 200, "body": {}}}
        for n in range(succeeded)
    ]


def openai_errors(failed: int) -> list[dict[str, Any]]:
    body = {"error": {"message": "model not found", "type": "invalid_request_error"}}
    return [
        {"id": f"e{n}", "custom_id": f"bad-{n}", "response": {"status_code": 400, "body": body}}
        for n in range(failed)
    ]


@dataclass(frozen=True)
class Path:
    """A batch's life at its provider and what its job must end as."""

    provider: str
    script: tuple[dict[str, Any], ...]
    files: dict[str, list[dict[str, Any]]]
    status: JobStatus
    stop_reason: str
    summary: dict[str, int]


PATHS = {
    "anthropic-ended-completed": Path(
        "anthropic",
        (
            anthropic("b1", "in_progress", processing=3),
            anthropic("b1", "in_progress", processing=1, succeeded=2),
            anthropic("b1", "ended", succeeded=2, errored=1),
        ),
        {"b1": anthropic_results(2, 1)},
        JobStatus.COMPLETED,
        "end_turn",
        {"succeeded": 2, "errored": 1},
    ),
    "anthropic-canceling-then-cancelled": Path(
        "anthropic",
        (
            anthropic("b1", "canceling", processing=2, succeeded=1),
            anthropic("b1", "ended", succeeded=1, canceled=2, cancelled=1),
        ),
        {"b1": [*anthropic_results(1, 0), {"custom_id": "c", "result": {"type": "canceled"}}]},
        JobStatus.CANCELLED,
        "cancelled",
        {"succeeded": 1, "canceled": 1},
    ),
    "anthropic-all-expired": Path(
        "anthropic",
        (anthropic("b1", "ended", expired=2),),
        {"b1": [{"custom_id": f"x{n}", "result": {"type": "expired"}} for n in range(2)]},
        JobStatus.EXPIRED,
        "timeout",
        {"expired": 2},
    ),
    "anthropic-all-errored": Path(
        "anthropic",
        (anthropic("b1", "in_progress", processing=2), anthropic("b1", "ended", errored=2)),
        {"b1": anthropic_results(0, 2)},
        JobStatus.FAILED,
        "llm_api_error",
        {"errored": 2},
    ),
    "openai-validating-to-completed": Path(
        "openai",
        (
            openai("b1", "validating"),
            openai("b1", "in_progress", total=3, completed=1),
            openai("b1", "finalizing", total=3, completed=2, failed=1),
            openai("b1", "completed", 3, 2, 1, output="file-out", errors="file-err"),
        ),
        {"file-out": openai_output(2), "file-err": openai_errors(1)},
        JobStatus.COMPLETED,
        "end_turn",
        {"succeeded": 2, "errored": 1},
    ),
    "openai-completed-all-failed": Path(
        "openai",
        (openai("b1", "completed", 2, 0, 2, errors="file-err"),),
        {"file-err": openai_errors(2)},
        JobStatus.FAILED,
        "llm_api_error",
        {"errored": 2},
    ),
    "openai-cancelling-cancelled": Path(
        "openai",
        (
            openai("b1", "cancelling", 4, 1, 0),
            openai("b1", "cancelled", 4, 1, 0, output="file-out"),
        ),
        {"file-out": openai_output(1)},
        JobStatus.CANCELLED,
        "cancelled",
        {"succeeded": 1},
    ),
    "openai-expired": Path(
        "openai",
        (openai("b1", "in_progress", 5, 2, 0), openai("b1", "expired", 5, 2, 0)),
        {},
        JobStatus.EXPIRED,
        "timeout",
        {},
    ),
    "openai-failed": Path(
        "openai", (openai("b1", "failed", 0, 0, 0),), {}, JobStatus.FAILED, "llm_api_error", {}
    ),
}


@pytest.mark.parametrize("name", PATHS)
async def test_a_job_follows_its_batch_to_the_mapped_end(
    name: str, fake: FakeProviders, make_polling: MakePolling
) -> None:
    path = PATHS[name]
    clock = Clock()
    polling = await make_polling(clock)
    fake.script(path.provider, "b1", *path.script)
    for file, lines in path.files.items():
        fake.results(file, lines)
    job = await polling.add(path.provider, "b1", callback_url="http://127.0.0.1:9/done")

    seen = []
    for _ in path.script:
        assert await polling.poller.run_once() == 1
        seen.append(await polling.job(job))
        clock.advance(INTERVAL_S)
    assert await polling.poller.run_once() == 0, "an ended batch is not polled again"

    *during, ended = seen
    assert all(j.status == JobStatus.RUNNING for j in during)
    assert ended.status == path.status
    assert ended.stop_reason == path.stop_reason
    last = path.script[-1]
    assert ended.metadata["request_counts"] == last["request_counts"]
    assert ended.metadata["provider_status"] == last.get("status", last.get("processing_status"))
    assert ended.metadata["provider"] == path.provider
    assert ended.metadata["batch_id"] == "b1"
    progress = ended.metadata["progress"]
    assert 0 <= progress["done"] <= progress["total"]
    assert ended.metadata["results"]["counts"] == path.summary
    if path.summary.get("errored"):
        assert ended.metadata["results"]["errors"][0]["message"] in (
            "bad prompt",
            "model not found",
        )
    assert await polling.callbacks(job) == [f"job.{path.status.value}"]
    assert await polling.followed() == 0
    events = await polling.jobs.list_events(ALICE, job.id)
    ends = [e for e in events if e.to_status == path.status]
    assert len(ends) == 1
    assert ends[0].reason
    assert path.provider in ends[0].reason


async def test_progress_lands_in_metadata_while_the_batch_runs(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    clock = Clock()
    polling = await make_polling(clock)
    fake.script(
        "openai",
        "b2",
        openai("b2", "in_progress", total=10, completed=3),
        openai("b2", "in_progress", total=10, completed=7, failed=1),
    )
    job = await polling.add("openai", "b2")
    await polling.poller.run_once()
    first = await polling.job(job)
    assert first.status == JobStatus.RUNNING
    assert first.metadata["progress"] == {"done": 3, "total": 10}
    clock.advance(INTERVAL_S)
    await polling.poller.run_once()
    second = await polling.job(job)
    assert second.metadata["progress"] == {"done": 8, "total": 10}
    assert second.metadata["request_counts"] == {"total": 10, "completed": 7, "failed": 1}
    assert second.metadata["expires_at"] == "2100-01-01T00:00:00Z"
    # Not due again before the interval has passed.
    assert await polling.poller.run_once() == 0


async def test_a_429_pauses_the_provider_for_its_retry_after(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    polling = await make_polling(batch_poll_concurrency=1)
    fake.script(
        "anthropic",
        "slow",
        Answer(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"}),
        anthropic("slow", "in_progress", processing=1),
    )
    fake.script("anthropic", "other", anthropic("other", "in_progress", processing=1))
    slow = await polling.add("anthropic", "slow")
    other = await polling.add("anthropic", "other")

    async def both_polled() -> bool:
        return len(fake.polls("anthropic", "slow")) == 2 and bool(fake.polls("anthropic", "other"))

    await polling.until(both_polled)
    throttled_at = fake.polls("anthropic", "slow")[0].at
    later = [s.at - throttled_at for s in fake.seen if s.at > throttled_at]
    assert later
    assert min(later) >= 1.0, "the provider was asked again before its Retry-After"
    assert (await polling.job(slow)).status == JobStatus.RUNNING
    assert (await polling.job(other)).status == JobStatus.RUNNING


async def test_errors_and_timeouts_are_recorded_and_retried_without_a_status_change(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    polling = await make_polling(batch_timeout_s=0.3, batch_lease_s=10, batch_poll_interval_s=0.5)
    fake.script(
        "openai",
        "b3",
        Answer(500, {"error": {"message": "internal error"}}),
        Answer(delay_s=1.0, body=openai("b3", "in_progress", 2, 1, 0)),
        openai("b3", "in_progress", 2, 1, 0),
    )
    job = await polling.add("openai", "b3")

    await polling.poller.run_once()
    failed = await polling.job(job)
    assert failed.status == JobStatus.PENDING
    assert failed.metadata["last_poll_error"] == "openai answered 500: internal error"

    async def timed_out() -> bool:
        found = await polling.job(job)
        return "no answer within" in str(found.metadata.get("last_poll_error"))

    await polling.until(timed_out)
    assert (await polling.job(job)).status == JobStatus.PENDING

    async def running() -> bool:
        return (await polling.job(job)).status == JobStatus.RUNNING

    await polling.until(running)
    recovered = await polling.job(job)
    assert "last_poll_error" not in recovered.metadata
    notes = [e.reason for e in await polling.jobs.list_events(ALICE, job.id)]
    assert "batch poll failed: openai answered 500: internal error" in notes
    assert any(note and "no answer within 0.3s" in note for note in notes)


async def test_a_batch_unknown_for_too_long_fails_its_job(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    clock = Clock()
    polling = await make_polling(clock, batch_not_found_fail_s=120)
    job = await polling.add("anthropic", "missing", callback_url="http://127.0.0.1:9/done")
    for _ in range(2):
        await polling.poller.run_once()
        still = await polling.job(job)
        assert still.status == JobStatus.PENDING
        assert "404" in still.metadata["last_poll_error"]
        clock.advance(INTERVAL_S)
    await polling.poller.run_once()
    failed = await polling.job(job)
    assert failed.status == JobStatus.FAILED
    assert failed.stop_reason == "error"
    assert "unknown to anthropic for 120s" in failed.metadata["last_poll_error"]
    assert await polling.callbacks(job) == ["job.failed"]
    assert await polling.followed() == 0
    # One note for the first 404 (the same error again adds none), then the failure.
    events = await polling.jobs.list_events(ALICE, job.id)
    assert [e.to_status for e in events] == ["pending", "pending", "failed"]


async def test_a_cancel_is_forwarded_and_followed_to_the_batch_end(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    polling = await make_polling()
    fake.script("anthropic", "b4", anthropic("b4", "in_progress", processing=4))
    fake.after_cancel[("anthropic", "b4")] = [
        anthropic("b4", "canceling", processing=2, succeeded=2),
        anthropic("b4", "ended", succeeded=2, canceled=2, cancelled=1),
    ]
    fake.results("b4", anthropic_results(2, 0))
    job = await polling.add("anthropic", "b4", callback_url="http://127.0.0.1:9/done")
    await polling.poller.run_once()
    assert (await polling.job(job)).status == JobStatus.RUNNING

    cancelled = await polling.jobs.cancel_job(ALICE, job.id, reason="not needed")
    assert cancelled.status == JobStatus.CANCELLED
    assert polling.jobs.batches_due.is_set()
    await polling.poller.run_once()  # due at once: the cancel goes out
    assert fake.cancels == [("anthropic", "b4")]

    async def ended() -> bool:
        return bool((await polling.job(job)).metadata["provider_status"] == "ended")

    async def poll_when_due() -> bool:
        await database_of(polling.jobs).write(_due_now, job.id)
        return await ended()

    await polling.until(poll_when_due)
    final = await polling.job(job)
    assert final.status == JobStatus.CANCELLED
    assert final.stop_reason == "cancelled"
    assert final.metadata["request_counts"]["canceled"] == 2
    assert final.metadata["results"]["counts"] == {"succeeded": 2}
    assert fake.cancels == [("anthropic", "b4")], "the cancel is sent once"
    assert await polling.callbacks(job) == ["job.cancelled"]
    events = await polling.jobs.list_events(ALICE, job.id)
    assert [e.to_status for e in events if e.to_status == "cancelled"] == ["cancelled"]
    assert await polling.followed() == 0


def _due_now(connection: Any, job_id: str) -> None:
    batches.poll_soon(connection, job_id, utcnow())


EXPIRY = T0 + timedelta(hours=1)
GRACE_S = 600.0


async def test_a_batch_unanswered_past_its_expiry_and_grace_expires_its_job(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    clock = Clock()
    polling = await make_polling(clock, batch_expiry_grace_s=GRACE_S)
    body = openai("late", "in_progress", 4, 1, 0) | {"expires_at": int(EXPIRY.timestamp())}
    refused = Answer(400, {"error": {"message": "batch service unavailable"}})
    fake.script("openai", "late", body, refused)
    job = await polling.add("openai", "late", callback_url="http://127.0.0.1:9/done")
    await polling.poller.run_once()
    assert (await polling.job(job)).metadata["expires_at"] == "2026-01-01T01:00:00Z"

    clock.now = EXPIRY + timedelta(seconds=GRACE_S - 60)  # past the expiry, within the grace
    await polling.poller.run_once()
    within = await polling.job(job)
    assert within.status == JobStatus.RUNNING
    assert "batch service unavailable" in within.metadata["last_poll_error"]

    clock.now = EXPIRY + timedelta(seconds=GRACE_S + 60)
    await polling.poller.run_once()
    expired = await polling.job(job)
    assert expired.status == JobStatus.EXPIRED
    assert expired.stop_reason == "timeout"
    assert "passed its provider expiry 2026-01-01T01:00:00Z" in expired.metadata["last_poll_error"]
    assert await polling.callbacks(job) == ["job.expired"]
    assert await polling.followed() == 0
    clock.advance(INTERVAL_S)
    assert await polling.poller.run_once() == 0


async def test_a_batch_still_running_past_its_expiry_and_grace_is_let_go(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    clock = Clock()
    polling = await make_polling(clock, batch_expiry_grace_s=GRACE_S)
    late = {"expires_at": EXPIRY.isoformat()}
    fake.script("anthropic", "stuck", anthropic("stuck", "in_progress", processing=2) | late)
    fake.script("anthropic", "dropped", anthropic("dropped", "in_progress", processing=2) | late)
    fake.after_cancel[("anthropic", "dropped")] = [
        anthropic("dropped", "canceling", processing=2) | late
    ]
    stuck = await polling.add("anthropic", "stuck")
    dropped = await polling.add("anthropic", "dropped")
    await polling.poller.run_once()
    await polling.jobs.cancel_job(ALICE, dropped.id)
    await polling.poller.run_once()
    assert fake.cancels == [("anthropic", "dropped")]

    clock.now = EXPIRY + timedelta(seconds=GRACE_S + 1)
    assert await polling.poller.run_once() == 2
    expired = await polling.job(stuck)
    assert expired.status == JobStatus.EXPIRED
    assert expired.stop_reason == "timeout"
    assert "still in_progress there" in expired.metadata["last_poll_error"]
    assert (await polling.job(dropped)).status == JobStatus.CANCELLED
    assert await polling.followed() == 0, "neither batch is followed past its expiry and grace"


async def test_a_job_ended_through_jobpulse_is_let_go_without_asking(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    polling = await make_polling()
    fake.script("openai", "b5", openai("b5", "in_progress", 1, 0, 0))
    job = await polling.add("openai", "b5")
    await polling.poller.run_once()
    await polling.jobs.update_job(ALICE, job.id, status="completed")
    asked = len(fake.seen)
    await polling.poller.run_once()
    assert len(fake.seen) == asked
    assert fake.cancels == []
    assert await polling.followed() == 0


async def test_two_pollers_never_poll_one_batch_at_once(
    database_url: str, fake: FakeProviders, make_polling: MakePolling
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("replicas share a PostgreSQL database; SQLite is one process")
    fake.delay_s = 0.05
    first = await make_polling()
    second = await make_polling()
    for n in range(40):
        fake.script("openai", f"r{n}", openai(f"r{n}", "in_progress", 1, 0, 0))
        await first.add("openai", f"r{n}")
    counts = await asyncio.gather(first.poller.run_once(), second.poller.run_once())
    assert sum(counts) == 40
    assert all(counts), counts
    assert max(fake.batch_in_flight_max.values()) == 1
    assert sorted(s.batch for s in fake.seen) == sorted(f"r{n}" for n in range(40))


async def test_a_thousand_batches_are_polled_in_one_round_within_the_bound(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    fake.delay_s = 0.01
    polling = await make_polling(batch_poll_concurrency=8)
    limit = asyncio.Semaphore(32)

    async def add(n: int) -> None:
        fake.script("anthropic", f"k{n}", anthropic(f"k{n}", "in_progress", processing=1))
        async with limit:
            await polling.add("anthropic", f"k{n}")

    await asyncio.gather(*(add(n) for n in range(1000)))
    started = time.monotonic()
    assert await polling.poller.run_once() == 1000
    took = time.monotonic() - started
    assert took < INTERVAL_S
    assert fake.in_flight_max <= 8
    assert sorted(s.batch for s in fake.seen) == sorted(f"k{n}" for n in range(1000))
    assert await polling.poller.run_once() == 0


async def test_keys_stay_out_of_logs_spans_and_jobs(
    fake: FakeProviders,
    make_polling: MakePolling,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    polling = await make_polling(clock)
    echo = {"error": {"message": f"key {ANTHROPIC_KEY} is over its limit"}}
    fake.script("anthropic", "k", Answer(400, echo), anthropic("k", "in_progress", processing=1))
    fake.script("openai", "k", Answer(401, {"error": {"message": f"bad key {OPENAI_KEY}"}}))
    anthropic_job = await polling.add("anthropic", "k")
    openai_job = await polling.add("openai", "k")
    await polling.poller.run_once()
    clock.advance(INTERVAL_S)
    await polling.poller.run_once()

    recorded = [
        *(await polling.jobs.list_events(ALICE, anthropic_job.id)),
        *(await polling.jobs.list_events(ALICE, openai_job.id)),
    ]
    told = repr(recorded) + repr(await polling.job(openai_job)) + caplog.text
    told += repr([(s.name, dict(s.attributes or {})) for s in spans.get_finished_spans()])
    assert "[redacted]" in told
    assert ANTHROPIC_KEY not in told
    assert OPENAI_KEY not in told
    assert any(s.name == "batch poll" for s in spans.get_finished_spans())


async def test_a_missing_key_is_recorded_not_sent(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    polling = await make_polling(openai_api_key=None)
    job = await polling.add("openai", "nokey")
    await polling.poller.run_once()
    found = await polling.job(job)
    assert found.status == JobStatus.PENDING
    assert "OPENAI_API_KEY is not set" in found.metadata["last_poll_error"]
    assert fake.seen == []


async def test_results_are_read_line_by_line_and_bad_lines_counted(
    fake: FakeProviders, make_polling: MakePolling, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(providers, "LINE_MAX_BYTES", 1000)
    polling = await make_polling()
    fake.script("anthropic", "big", anthropic("big", "ended", succeeded=3, errored=1))
    huge = {"custom_id": "huge", "result": {"type": "succeeded", "message": "x" * 5000}}
    lines: list[Any] = [*anthropic_results(2, 1), huge, "{not json"]
    fake.results("big", lines)
    job = await polling.add("anthropic", "big")
    await polling.poller.run_once()
    ended = await polling.job(job)
    assert ended.status == JobStatus.COMPLETED
    assert ended.metadata["results"]["counts"] == {"succeeded": 2, "errored": 1, "unreadable": 2}
    exposition = polling.jobs.metrics.exposition().decode()
    assert 'jobpulse_batch_polls_total{outcome="ended",provider="anthropic"} 1.0' in exposition
    await polling.jobs.refresh_gauges()
    assert "jobpulse_batches_in_flight 0.0" in polling.jobs.metrics.exposition().decode()


async def test_results_the_provider_no_longer_has_end_the_job_saying_so(
    fake: FakeProviders, make_polling: MakePolling
) -> None:
    polling = await make_polling()
    fake.script("openai", "gone", openai("gone", "completed", 2, 2, 0, output="file-gone"))
    job = await polling.add("openai", "gone")
    await polling.poller.run_once()
    ended = await polling.job(job)
    assert ended.status == JobStatus.COMPLETED
    assert ended.metadata["results"]["unavailable"] == "openai answered 404: no such batch"


async def test_hostile_provider_answers_are_recorded_not_stored_raw(
    fake: FakeProviders, make_polling: MakePolling, database_url: str
) -> None:
    clock = Clock()
    polling = await make_polling(clock)
    fake.script(
        "openai",
        "odd",
        Answer(500, {"error": {"message": "bad\u0000thing " + "x" * 5000}}),
        Answer(200, "not a batch"),
        Answer(200, {"status": "in_progress", "request_counts": {"total": "many"}}),
        openai("odd", "in_progress", 1, 0, 0) | {"output_file_id": "f\u0000" + "y" * 5000},
    )
    job = await polling.add("openai", "odd")
    errors = []
    for _ in range(3):
        await polling.poller.run_once()
        errors.append((await polling.job(job)).metadata["last_poll_error"])
        clock.advance(INTERVAL_S)
        await asyncio.sleep(1.1)  # the 500 paused the provider for a second
    assert errors[0].startswith("openai answered 500: badthing")
    assert len(errors[0]) <= 300
    assert "not an object" in errors[1]
    assert "request_counts.total is not a count" in errors[2]
    await polling.poller.run_once()
    found = await polling.job(job)
    assert found.status == JobStatus.RUNNING
    assert "\x00" not in found.metadata["output_file_id"]
    assert len(found.metadata["output_file_id"]) <= 2048

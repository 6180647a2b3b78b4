"""Window figures (`JobManager.stats`, `/v1/stats`) on SQLite and PostgreSQL: counts, rates,
quantiles, stop reasons, the series, stuck jobs and webhook health, in each caller's view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from jobpulse import Actor, JobFilter, JobManager, JobStatus, Settings
from jobpulse.figures import Bucket, Histogram, Window
from jobpulse.storage.engine import Database
from tests.conftest import MakeKey
from tests.monitor.test_sweeper import T0, Clock

ALICE = Actor("org-a", "alice")
BOB = Actor("org-a", "bob")
ADMIN = Actor("org-a", "root", is_admin=True)
HOUR = 3600


@pytest.fixture
async def jobs(database_url: str) -> AsyncIterator[tuple[JobManager, Clock]]:
    clock = Clock()
    manager = JobManager(
        Database(Settings(database_url=database_url)), clock, allow_private_callbacks=True
    )
    yield manager, clock
    await manager.close()


async def at(clock: Clock, seconds: float) -> None:
    clock.now = T0 + timedelta(seconds=seconds)


async def test_a_window_of_jobs_in_figures(jobs: tuple[JobManager, Clock]) -> None:
    manager, clock = jobs
    await at(clock, -HOUR)
    await manager.create_job(ALICE)  # before the window
    await at(clock, 600)
    first = await manager.create_job(
        ALICE, status="running", job_type="agent", callback_url="http://127.0.0.1:9/cb"
    )
    await at(clock, 601)
    await manager.record_first_token(ALICE, first.id)
    await at(clock, 605)
    await manager.update_job(ALICE, first.id, stop_reason="end_turn")
    await at(clock, 70 * 60)
    second = await manager.create_job(ALICE, status="running")
    await at(clock, 70 * 60 + 2)
    await manager.update_job(ALICE, second.id, stop_reason="error")
    await at(clock, 80 * 60)
    await manager.create_job(ALICE, status="pending", stale_after_s=60)
    await at(clock, 90 * 60)
    cancelled = await manager.create_job(ALICE)
    await manager.cancel_job(ALICE, cancelled.id)
    await manager.create_job(BOB, job_type="agent")
    await at(clock, 2 * HOUR)
    await manager.sweep()  # the pending one is stale: stuck

    window = Window(T0, T0 + timedelta(hours=3), Bucket.HOUR)
    mine = await manager.stats(ALICE, window=window)
    assert mine.total == 4
    assert mine.by_status[JobStatus.COMPLETED] == 1
    assert mine.by_status[JobStatus.FAILED] == 1
    assert mine.by_status[JobStatus.PENDING] == 1
    assert mine.by_status[JobStatus.CANCELLED] == 1
    assert mine.rate(JobStatus.COMPLETED) == pytest.approx(1 / 3)
    assert mine.rate(JobStatus.FAILED) == pytest.approx(1 / 3)
    assert mine.ttft.count == 1
    p50 = mine.ttft.quantile(0.5)
    assert p50 is not None
    assert 0.75 < p50 <= 1.0
    assert mine.duration.count == 3
    assert mine.stop_reasons == {"end_turn": 1, "error": 1, "cancelled": 1}
    assert [(p.start, p.created, p.completed, p.failed) for p in mine.series] == [
        (T0, 1, 1, 0),
        (T0 + timedelta(hours=1), 3, 0, 1),
        (T0 + timedelta(hours=2), 0, 0, 0),
    ]
    assert mine.stuck == 1
    assert mine.webhooks == {"pending": 1, "delivered": 0, "exhausted": 0}

    everyone = await manager.stats(ADMIN, window=window)
    assert everyone.total == 5
    agents = await manager.stats(ADMIN, JobFilter(job_type="agent"), window)
    assert agents.total == 2
    assert agents.webhooks["pending"] == 1
    daily = await manager.stats(ALICE, window=Window(T0, T0 + timedelta(days=2), Bucket.DAY))
    assert [(p.start, p.created) for p in daily.series] == [
        (T0, 4),
        (T0 + timedelta(days=1), 0),
    ]
    outsider = await manager.stats(Actor("org-b", "eve"), window=window)
    assert outsider.total == 0
    assert outsider.rate(JobStatus.COMPLETED) is None
    assert outsider.ttft.quantile(0.5) is None


def test_quantiles_interpolate_within_their_bucket() -> None:
    histogram = Histogram((1.0, 2.0, 4.0), (10, 30, 40), 50)
    assert histogram.quantile(0.1) == pytest.approx(0.5)
    assert histogram.quantile(0.4) == pytest.approx(1.5)
    assert histogram.quantile(0.7) == pytest.approx(3.0)
    assert histogram.quantile(0.99) == 4.0  # beyond the last bound: the last bound


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bucket": "minute"}, "bucket"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "earlier"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}, "366 days"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "bucket=day"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "3"}, "limit"),
    ],
)
async def test_a_bad_window_is_refused_clearly(
    http: httpx.AsyncClient, make_key: MakeKey, params: dict[str, str], message: str
) -> None:
    answer = await http.get("/v1/stats", params=params, headers=await make_key("o", "u"))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"
    assert message in answer.text


async def test_stats_over_http_follow_the_count(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    alice = await make_key("org-a", "alice")
    bob = await make_key("org-a", "bob")
    for body in ({"job_type": "agent"}, {"job_type": "agent", "status": "running"}, {}):
        await http.post("/v1/jobs", json=body, headers=alice)
    await http.post("/v1/jobs", json={"job_type": "agent"}, headers=bob)
    for params in ({}, {"job_type": "agent"}, {"status": "running"}):
        stats = (await http.get("/v1/stats", params=params, headers=alice)).json()
        count = (await http.get("/v1/jobs/count", params=params, headers=alice)).json()
        assert stats["total"] == count["total"]
        assert stats["by_status"] == count["by_status"]
    stats = (await http.get("/v1/stats", headers=alice)).json()
    assert stats["bucket"] == "hour"
    assert len(stats["series"]) in (24, 25)
    assert sum(point["created"] for point in stats["series"]) == 3
    assert stats["ttft"]["buckets"][0] == {"le": 0.001, "count": 0}
    assert set(stats["webhooks"]) == {"pending", "delivered", "exhausted"}

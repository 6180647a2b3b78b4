"""Alert rules evaluated on the test clock, on SQLite and PostgreSQL, with two evaluators on
one database (two replicas): a failure-rate rule fires within two evaluation periods of the
rate crossing its line and resolves once, one signed message each, delivered to a real
receiver on loopback; too few jobs never fire; an episode opens and closes once under races.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from jobpulse import Actor, JobManager, Settings
from jobpulse.alerts.evaluator import AlertEvaluator
from jobpulse.alerts.rules import Metric
from jobpulse.alerts.service import AlertRules
from jobpulse.client import verify_webhook
from jobpulse.storage.sql_store import open_store
from jobpulse.usage.recorder import UsageRecorder
from jobpulse.webhooks.delivery import Deliverer, new_client
from tests.clock import Clock
from tests.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INTERVAL_S = 60.0
PERIOD = timedelta(seconds=INTERVAL_S)
ADMIN = Actor("org-a", "root", is_admin=True)
ALICE = Actor("org-a", "alice")


@dataclass
class Replica:
    """One process's manager and evaluator, on the shared database and test clock."""

    jobs: JobManager
    evaluator: AlertEvaluator


@dataclass
class World:
    clock: Clock
    replicas: list[Replica]
    deliverer: Deliverer
    receiver: Receiver

    @property
    def jobs(self) -> JobManager:
        return self.replicas[0].jobs

    async def tick(self) -> list[int]:
        """One evaluation period later: every replica evaluates at once; how many episodes
        each opened or closed.
        """
        self.clock.advance(INTERVAL_S)
        rounds = [replica.evaluator.evaluate_due() for replica in self.replicas]
        return [len(changed) for changed in await asyncio.gather(*rounds)]

    async def end_jobs(self, number: int, stop_reason: str, actor: Actor = ALICE) -> None:
        for _ in range(number):
            job = await self.jobs.create_job(actor, status="running")
            await self.jobs.update_job(actor, job.id, stop_reason=stop_reason)

    async def deliver(self, expected: int) -> list[dict[str, Any]]:
        """Deliver until `expected` messages have arrived, then a moment longer (to see any
        more); the verified bodies, in order of arrival.
        """
        deadline = time.monotonic() + 10
        while len(self.receiver.received) < expected:
            assert time.monotonic() < deadline, f"got {len(self.receiver.received)}"
            await self.deliverer.run_once()
            await asyncio.sleep(0.02)
        for _ in range(5):
            await self.deliverer.run_once()
            await asyncio.sleep(0.02)
        return [
            verify_webhook(request.headers, request.body, SECRET)
            for request in self.receiver.received
        ]


@pytest.fixture(params=[1, 2], ids=["one-evaluator", "two-replicas"])
async def world(
    request: pytest.FixtureRequest, database_url: str, receiver: Receiver
) -> AsyncIterator[World]:
    clock = Clock()
    settings = Settings(
        database_url=database_url,
        webhook_secret=SECRET,
        webhook_allow_private=True,
        webhook_retry_schedule="0,0.05,0.05",
        webhook_timeout_s=2,
        alert_webhook=receiver.url,
        alert_interval_s=INTERVAL_S,
    )
    replicas = []
    for _ in range(request.param):
        jobs = JobManager(open_store(settings), clock)
        replicas.append(Replica(jobs, AlertEvaluator.from_settings(jobs, settings)))
    async with new_client(settings) as http:
        yield World(clock, replicas, Deliverer(replicas[0].jobs.store, settings, http), receiver)
    for replica in replicas:
        await replica.jobs.close()


async def test_a_failure_rate_fires_once_and_resolves_once(world: World) -> None:
    world.receiver.statuses = [500, 200]  # the first message is retried: still one message
    rules = AlertRules(world.jobs, world.receiver.url)
    rule = await rules.create(
        ADMIN,
        name="agents failing",
        metric=Metric.FAILURE_RATE,
        window_s=600,
        above=0.5,
        min_jobs=4,
        job_type="job",
    )
    await world.end_jobs(4, "end_turn")
    assert sum(await world.tick()) == 0  # 0 of 4 failed
    assert (await rules.get(ADMIN, rule.id)).last_value == 0.0

    world.clock.advance(INTERVAL_S / 2)
    await world.end_jobs(5, "error")  # 5 of 9: the line is crossed here
    crossed = world.clock.now
    opened = [await world.tick()]
    while sum(opened[-1]) == 0:
        opened.append(await world.tick())
    assert world.clock.now - crossed <= 2 * PERIOD
    assert len(opened) == 1, opened
    assert sum(opened[0]) == 1, opened  # one evaluator opened it

    firing = await rules.alerts(ADMIN)
    assert [(alert.rule_id, alert.resolved_at) for alert in firing] == [(rule.id, None)]
    assert firing[0].value == pytest.approx(5 / 9)
    assert firing[0].jobs == 9
    assert (await rules.get(ADMIN, rule.id)).firing_alert_id == firing[0].id

    for _ in range(3):  # still above its line: nothing more is said
        await world.end_jobs(1, "error")
        assert sum(await world.tick()) == 0

    firing_twice = await world.deliver(expected=2)  # answered 500, then 200: one message
    assert [body["type"] for body in firing_twice] == ["alert.firing"] * 2

    await world.end_jobs(20, "end_turn")  # 8 of 32
    assert sum(await world.tick()) == 1
    for _ in range(3):
        assert sum(await world.tick()) == 0

    bodies = await world.deliver(expected=3)
    ids = [request.headers["webhook-id"] for request in world.receiver.received]
    assert len(ids) == 3
    assert ids[0] == ids[1] != ids[2]
    assert [body["type"] for body in bodies] == ["alert.firing", "alert.firing", "alert.resolved"]
    fired, resolved = bodies[1]["data"], bodies[2]["data"]
    assert fired["alert_id"] == resolved["alert_id"] == firing[0].id
    assert (fired["rule_id"], fired["name"], fired["metric"]) == (
        rule.id,
        "agents failing",
        "failure_rate",
    )
    assert (fired["organization_id"], fired["above"], fired["jobs"]) == ("org-a", 0.5, 9)
    assert fired["value"] == pytest.approx(5 / 9)
    assert resolved["value"] == pytest.approx(8 / 32)
    assert resolved["reason"] is None

    [alert] = await rules.alerts(ADMIN)
    assert alert.resolved_at == world.clock.now - 3 * PERIOD
    assert alert.resolved_value == pytest.approx(8 / 32)
    assert not (await rules.get(ADMIN, rule.id)).is_firing


async def test_too_few_jobs_never_fire_and_other_jobs_do_not_count(world: World) -> None:
    rules = AlertRules(world.jobs, world.receiver.url)
    await rules.create(
        ADMIN,
        name="agents",
        metric=Metric.FAILURE_RATE,
        window_s=600,
        above=0.5,
        min_jobs=4,
        job_type="agent_run",
    )
    await world.end_jobs(3, "error")  # job type `job`: not the rule's
    await world.end_jobs(3, "error", Actor("org-b", "eve"))  # another organization's
    assert sum(await world.tick()) == 0
    for _ in range(3):  # 3 of 3 failed, but 4 are needed to tell
        job = await world.jobs.create_job(ALICE, job_type="agent_run", status="running")
        await world.jobs.update_job(ALICE, job.id, stop_reason="error")
    assert sum(await world.tick()) == 0
    assert (await rules.alerts(ADMIN)) == []
    job = await world.jobs.create_job(ALICE, job_type="agent_run", status="running")
    await world.jobs.update_job(ALICE, job.id, stop_reason="error")
    assert sum(await world.tick()) == 1
    # The window slides past them all: too few jobs to tell, and the alert resolves.
    world.clock.advance(600)
    assert sum(await world.tick()) == 1
    bodies = await world.deliver(expected=2)
    # Sent at once, they may arrive in either order (a receiver orders them by their times).
    assert sorted(body["type"] for body in bodies) == ["alert.firing", "alert.resolved"]
    assert [alert.resolved_at is not None for alert in await rules.alerts(ADMIN)] == [True]


async def test_stuck_jobs_and_a_duration_p99(world: World) -> None:
    rules = AlertRules(world.jobs, world.receiver.url)
    stuck = await rules.create(
        ADMIN, name="stuck", metric=Metric.STUCK_JOBS, window_s=3600, above=0, min_jobs=1
    )
    slow = await rules.create(
        ADMIN, name="slow", metric=Metric.DURATION_P99_S, window_s=3600, above=30, min_jobs=2
    )
    job = await world.jobs.create_job(ALICE, status="running", heartbeat_timeout_s=10)
    for seconds in (1, 2):
        done = await world.jobs.create_job(ALICE, status="running")
        world.clock.advance(seconds)
        await world.jobs.update_job(ALICE, done.id, stop_reason="end_turn")
    assert sum(await world.tick()) == 0
    from jobpulse.sweeper.loop import Sweeper

    assert len(await Sweeper(world.jobs).sweep()) == 1  # silent for 60 s: flagged stuck
    for _ in range(2):
        long = await world.jobs.create_job(ALICE, status="running")
        world.clock.advance(100)
        await world.jobs.update_job(ALICE, long.id, stop_reason="end_turn")
    assert sum(await world.tick()) == 2
    firing = {alert.rule_id: alert for alert in await rules.alerts(ADMIN)}
    assert firing[stuck.id].value == 1.0
    assert firing[slow.id].value > 30
    await world.jobs.cancel_job(ALICE, job.id)
    assert sum(await world.tick()) == 1  # no job stuck any more
    assert {a.rule_id for a in await rules.alerts(ADMIN) if a.resolved_at is None} == {slow.id}


async def test_a_firing_rule_deleted_resolves_once(world: World) -> None:
    rules = AlertRules(world.jobs, world.receiver.url)
    rule = await rules.create(
        ADMIN, name="any failure", metric=Metric.FAILURE_RATE, window_s=600, above=0, min_jobs=1
    )
    await world.end_jobs(1, "error")
    assert sum(await world.tick()) == 1
    await rules.delete(ADMIN, rule.id)
    assert sum(await world.tick()) == 0
    bodies = await world.deliver(expected=2)
    # Sent at once, they may arrive in either order (a receiver orders them by their times).
    assert sorted(body["type"] for body in bodies) == ["alert.firing", "alert.resolved"]
    [resolved] = [body["data"] for body in bodies if body["type"] == "alert.resolved"]
    assert resolved["reason"] == "rule deleted"
    assert await rules.list_rules(ADMIN) == []


async def test_tokens_and_cost_of_the_llm_calls_and_a_model_of_its_own(world: World) -> None:
    usage = UsageRecorder.from_settings(world.jobs, Settings())
    rules = AlertRules(world.jobs, world.receiver.url)
    tokens = await rules.create(
        ADMIN,
        name="tokens",
        metric=Metric.TOKENS,
        window_s=600,
        above=1000,
        min_jobs=1,
        model="house-model",
    )
    cost = await rules.create(
        ADMIN, name="spend", metric=Metric.COST_USD, window_s=600, above=0.05, min_jobs=1
    )
    failing = await rules.create(
        ADMIN,
        name="model failing",
        metric=Metric.FAILURE_RATE,
        window_s=600,
        above=0.5,
        min_jobs=1,
        model="house-model",
    )
    job = await world.jobs.create_job(ALICE, status="running")
    await usage.record(ALICE, job.id, provider="house", model="house-model", input_tokens=800)
    await usage.record(
        ALICE, job.id, provider="openai", model="other", input_tokens=9000, cost_usd=0.04
    )
    other = await world.jobs.create_job(ALICE, status="running")
    await usage.record(ALICE, other.id, provider="openai", model="other", output_tokens=1)
    await world.jobs.update_job(ALICE, other.id, stop_reason="error")  # not of house-model
    assert sum(await world.tick()) == 0
    assert (await rules.get(ADMIN, tokens.id)).last_value == 800
    assert (await rules.get(ADMIN, cost.id)).last_value == pytest.approx(0.04)
    assert (await rules.get(ADMIN, failing.id)).last_value is None  # none of its jobs ended

    await usage.record(
        ALICE,
        job.id,
        provider="house",
        model="house-model",
        output_tokens=150,
        cache_read_tokens=60,
        cost_usd=0.02,
    )
    await world.jobs.update_job(ALICE, job.id, stop_reason="error")
    assert sum(await world.tick()) == 3
    firing = {alert.rule_id: alert for alert in await rules.alerts(ADMIN)}
    assert firing[tokens.id].value == 1010
    assert firing[tokens.id].jobs == 2  # calls
    assert firing[cost.id].value == pytest.approx(0.06)
    assert firing[failing.id].value == 1.0

    world.clock.advance(600)  # the window slides past the calls
    assert sum(await world.tick()) == 3  # no calls, no ended job: all three resolve
    assert sum(await world.tick()) == 0
    bodies = await world.deliver(expected=6)
    assert sorted(body["type"] for body in bodies) == ["alert.firing"] * 3 + ["alert.resolved"] * 3

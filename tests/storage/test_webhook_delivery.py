"""Callbacks delivered to real receivers on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobpulse import Actor, JobManager, Settings, ValidationError
from jobpulse.client import verify_webhook
from jobpulse.domain import OutboxMessage
from jobpulse.storage import attempts, claims, outbox
from jobpulse.storage.sql_store import SqlJobStore, open_store
from jobpulse.webhooks import payload
from jobpulse.webhooks.delivery import Deliverer, new_client
from jobpulse.webhooks.pace import MOST
from tests.receiver import Receiver
from tests.sql import database_of

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ALICE = Actor("org-a", "alice")


@dataclass
class World:
    jobs: JobManager
    deliverer: Deliverer
    store: SqlJobStore


@pytest.fixture
def alerts() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


@pytest.fixture
async def world(database_url: str, alerts: Receiver) -> AsyncIterator[World]:
    settings = Settings(
        database_url=database_url,
        webhook_secret=SECRET,
        webhook_allow_private=True,
        webhook_retry_schedule="0,0.05,0.05",
        webhook_timeout_s=2,
        alert_webhook=alerts.url,
    )
    store = open_store(settings)
    async with new_client(settings) as http:
        yield World(
            JobManager(store, allow_private_callbacks=True),
            Deliverer(store, settings, http),
            store,
        )
    await store.close()


async def deliver_until(world: World, done: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "not delivered in time"
        await world.deliverer.run_once()
        await asyncio.sleep(0.02)


async def test_retried_until_delivered(world: World, receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 200]
    job = await world.jobs.create_job(ALICE, status="running", callback_url=receiver.url)
    await world.jobs.update_job(ALICE, job.id, stop_reason="end_turn", metadata={"n": 1})
    await deliver_until(world, lambda: len(receiver.received) == 3)
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert len(ids) == 1
    body = verify_webhook(receiver.received[-1].headers, receiver.received[-1].body, SECRET)
    assert (body["type"], body["job_id"], body["status"]) == ("job.completed", job.id, "completed")
    assert (body["stop_reason"], body["metadata"]) == ("end_turn", {"n": 1})
    assert receiver.received[0].headers["user-agent"].startswith("jobpulse/")
    attempts = await world.jobs.list_callbacks(ALICE, job.id)
    assert [(a["attempt"], a["status_code"], a["state"]) for a in attempts] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 200, "delivered"),
    ]
    shown = await world.jobs.get_job(ALICE, job.id)
    assert (shown.callback_status_code, shown.callback_error) == (200, None)
    assert shown.callback_sent_at is not None
    await world.deliverer.run_once()
    assert len(receiver.received) == 3  # delivered means done
    registry = world.deliverer.metrics.registry
    for outcome, number in (("retrying", 2), ("delivered", 1)):
        labels = {"event_type": "job.completed", "outcome": outcome}
        assert registry.get_sample_value("jobpulse_callbacks_total", labels) == number
    assert registry.get_sample_value("jobpulse_callback_latency_seconds_count") == 3


async def test_exhausted_then_redelivered_by_hand(
    world: World, receiver: Receiver, alerts: Receiver
) -> None:
    down = Receiver()
    url, port = down.url, down.server.server_address[1]
    down.close()  # nothing listens there now
    job = await world.jobs.create_job(ALICE, callback_url=url)
    await world.jobs.cancel_job(ALICE, job.id)
    await deliver_until(world, lambda: len(alerts.received) == 1)
    attempts = await world.jobs.list_callbacks(ALICE, job.id)
    assert [a["state"] for a in attempts] == ["retrying", "retrying", "exhausted"]
    shown = await world.jobs.get_job(ALICE, job.id)
    assert shown.callback_status_code is None
    assert shown.callback_error
    alert = alerts.received[0].json
    assert alert["type"] == "callback.exhausted"
    assert (alert["data"]["job_id"], alert["data"]["attempts"]) == (job.id, 3)
    webhook_id = alert["data"]["webhook_id"]

    back = Receiver(port=port)  # the receiver comes back where it was
    try:
        assert await world.jobs.retry_callback(ALICE, job.id) == webhook_id
        await deliver_until(world, lambda: len(back.received) == 1)
        assert back.received[0].headers["webhook-id"] == webhook_id
        assert (await world.jobs.get_job(ALICE, job.id)).callback_status_code == 200
    finally:
        back.close()


async def test_gone_stops_at_once(world: World, receiver: Receiver) -> None:
    receiver.statuses = [410]
    job = await world.jobs.create_job(ALICE, status="running", callback_url=receiver.url)
    await world.jobs.update_job(ALICE, job.id, status="failed")
    await deliver_until(world, lambda: len(receiver.received) == 1)
    await asyncio.sleep(0.1)
    await world.deliverer.run_once()
    assert len(receiver.received) == 1
    assert [a["state"] for a in await world.jobs.list_callbacks(ALICE, job.id)] == ["failed"]


async def test_twenty_racing_completions_send_one_callback(
    world: World, receiver: Receiver
) -> None:
    job = await world.jobs.create_job(ALICE, status="running", callback_url=receiver.url)
    results = await asyncio.gather(
        *(world.jobs.update_job(ALICE, job.id, status="completed") for _ in range(20)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    await deliver_until(world, lambda: len(receiver.received) == 1)
    await asyncio.sleep(0.1)
    await world.deliverer.run_once()
    assert len(receiver.received) == 1


async def test_no_callback_without_url_or_end(world: World, receiver: Receiver) -> None:
    plain = await world.jobs.create_job(ALICE, status="running")
    await world.jobs.update_job(ALICE, plain.id, status="completed")
    hooked = await world.jobs.create_job(ALICE, status="pending", callback_url=receiver.url)
    await world.jobs.update_job(ALICE, hooked.id, status="running")
    await world.jobs.heartbeat(ALICE, hooked.id)
    assert await world.deliverer.run_once() == 0
    assert receiver.received == []


async def test_a_claim_is_leased(world: World, receiver: Receiver) -> None:
    job = await world.jobs.create_job(ALICE, status="running", callback_url=receiver.url)
    await world.jobs.update_job(ALICE, job.id, status="completed")
    now = (await world.jobs.get_job(ALICE, job.id)).updated_at + timedelta(seconds=1)
    lease = now + timedelta(seconds=60)
    first = await database_of(world.store).write(claims.claim_due, now, lease, 10)
    assert [message.job_id for message in first] == [job.id]
    assert await database_of(world.store).write(claims.claim_due, now, lease, 10) == []
    later = lease + timedelta(seconds=1)  # the first worker died: its lease ran out
    again = await database_of(world.store).write(claims.claim_due, later, later + timedelta(60), 10)
    assert [message.webhook_id for message in again] == [first[0].webhook_id]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
    ],
)
async def test_private_callback_urls_are_refused(database_url: str, url: str) -> None:
    jobs = JobManager.from_settings(Settings(database_url=database_url))
    try:
        with pytest.raises(ValidationError, match="JOBPULSE_WEBHOOK_ALLOW_PRIVATE"):
            await jobs.create_job(ALICE, callback_url=url)
        job = await jobs.create_job(ALICE)
        with pytest.raises(ValidationError, match="JOBPULSE_WEBHOOK_ALLOW_PRIVATE"):
            await jobs.update_job(ALICE, job.id, callback_url=url)
        assert (await jobs.count_jobs(ALICE)).total == 1
    finally:
        await jobs.close()


async def test_attempts_a_failed_claim_carried_are_recorded_alone(
    database_url: str, receiver: Receiver
) -> None:
    # Claims every 20 ms: the attempt ends while claims come, and the next one carries it.
    settings = Settings(database_url=database_url, webhook_allow_private=True, webhook_poll_s=0.02)
    store = open_store(settings)
    jobs = JobManager(store, allow_private_callbacks=True)
    claim = store.claim_outbox
    carried: list[Sequence[attempts.Outcome]] = []

    async def claim_failing_once(
        now: datetime,
        lease_until: datetime,
        limit: int,
        shares: claims.Shares | None,
        recorded: Sequence[attempts.Outcome] = (),
    ) -> list[outbox.Claimed]:
        if recorded and not carried:  # the first claim that carries attempts
            carried.append(recorded)
            raise ConnectionError("the database went away")
        return await claim(now, lease_until, limit, shares, recorded)

    store.claim_outbox = claim_failing_once  # type: ignore[method-assign]
    try:
        job = await jobs.create_job(ALICE, status="running", callback_url=receiver.url)
        await jobs.update_job(ALICE, job.id, status="completed")
        async with new_client(settings) as http:
            deliverer = Deliverer(store, settings, http)
            worker = asyncio.create_task(deliverer.run())
            deadline = time.monotonic() + 10
            while not await jobs.list_callbacks(ALICE, job.id):
                assert time.monotonic() < deadline, "the attempt was never recorded"
                await asyncio.sleep(0.02)
            await deliverer.stop(worker)
        assert len(carried) == 1
        [attempt] = await jobs.list_callbacks(ALICE, job.id)
        assert (attempt["attempt"], attempt["state"]) == (1, "delivered")
        assert len(receiver.received) == 1  # recorded, so not sent again
    finally:
        await store.close()


async def test_a_fast_receivers_backlog_is_claimed_ahead_of_its_senders(
    database_url: str, receiver: Receiver
) -> None:
    # Two senders, four ready messages each at the least pace: a receiver answering at once
    # lets the claims grow (fewer, larger ones) so that the senders never wait for them.
    settings = Settings(
        database_url=database_url,
        webhook_allow_private=True,
        webhook_concurrency=2,
        webhook_host_concurrency=2,
    )
    least = settings.webhook_concurrency * 4
    store = open_store(settings)
    backlog = 400
    now = datetime.now(UTC)
    messages = [
        OutboxMessage(payload.new_webhook_id(), "job.completed", receiver.url, {"n": n}, now)
        for n in range(backlog)
    ]
    await database_of(store).write(outbox.insert_messages, messages)
    limits: list[int] = []
    claim = store.claim_outbox

    async def claim_outbox(*args: Any) -> list[outbox.Claimed]:
        limits.append(args[2])
        return await claim(*args)

    store.claim_outbox = claim_outbox  # type: ignore[method-assign,assignment]
    async with new_client(settings) as http:
        deliverer = Deliverer(store, settings, http)
        worker = asyncio.create_task(deliverer.run())
        try:
            deadline = time.monotonic() + 30
            while len(receiver.received) < backlog:
                assert time.monotonic() < deadline, f"{len(receiver.received)} delivered"
                await asyncio.sleep(0.05)
        finally:
            await deliverer.stop(worker)
    await store.close()
    assert sorted(got.json["n"] for got in receiver.received) == list(range(backlog))
    assert limits[0] == least
    assert least < max(limits) <= least * MOST, limits

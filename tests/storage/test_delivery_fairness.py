"""Tenants whose receivers hang or trickle, on hosts of their own, beside a healthy tenant:
the healthy tenant's callbacks still arrive at once, on real loopback receivers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from jobpulse import Actor, JobManager, Settings
from jobpulse.jobs.hooks import Hooks
from jobpulse.storage import claims, outbox
from jobpulse.storage.sql_store import open_store
from jobpulse.webhooks import payload
from jobpulse.webhooks.delivery import Deliverer, new_client
from jobpulse.webhooks.fairness import FairQueue
from tests.receiver import Receiver
from tests.sql import database_of

GOOD = Actor("org-good", "gina")
HOSTILE = [Actor(f"org-hostile-{n}", "mallory") for n in range(3)]
#: Seconds an attempt may take here (15 in production): a hanging receiver holds a slot
#: this long each attempt, and its callback is due again at once (schedule below).
TIMEOUT_S = 3.0


@dataclass
class World:
    jobs: JobManager
    deliverer: Deliverer


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    settings = Settings(
        database_url=database_url,
        webhook_allow_private=True,
        webhook_timeout_s=TIMEOUT_S,
        webhook_lease_s=TIMEOUT_S + 6,
        webhook_retry_schedule=",".join(["0"] + ["0.2"] * 30),
    )
    # The defaults: 16 slots, 8 per host, 4 per organization.
    assert (settings.webhook_concurrency, settings.webhook_host_concurrency) == (16, 8)
    assert settings.webhook_org_concurrency == 4
    store = open_store(settings)
    try:
        async with new_client(settings) as sender:
            deliverer = Deliverer(store, settings, sender)
            jobs = JobManager(
                store, allow_private_callbacks=True, hooks=Hooks(queued=deliverer.wake.set)
            )
            yield World(jobs, deliverer)
    finally:
        await store.close()


@pytest.fixture
def hostile_receivers() -> Iterator[list[Receiver]]:
    """Two hanging receivers on 127.0.0.2 and a trickling one on 127.0.0.3."""
    hanging = [Receiver(host="127.0.0.2") for _ in range(2)]
    for receiver in hanging:
        receiver.released.clear()  # holds every request until closed
    trickling = Receiver(host="127.0.0.3", body=lambda: iter(lambda: b".", None), pause_s=0.3)
    yield [*hanging, trickling]
    for receiver in (*hanging, trickling):
        receiver.close()


async def _end_with_callback(jobs: JobManager, actor: Actor, url: str) -> str:
    job = await jobs.create_job(actor, status="running", callback_url=url)
    await jobs.update_job(actor, job.id, stop_reason="end_turn")
    return job.id


async def test_hostile_tenants_cannot_hold_up_a_healthy_tenants_callbacks(
    world: World, hostile_receivers: list[Receiver], receiver: Receiver
) -> None:
    # Each hostile tenant has 10 callbacks to its own misbehaving host: 20 hanging, 10
    # trickling, far more than the 16 slots of the process.
    for actor, hostile in zip(HOSTILE, hostile_receivers, strict=True):
        for _ in range(10):
            await _end_with_callback(world.jobs, actor, hostile.url)
    worker = asyncio.create_task(world.deliverer.run())
    try:
        began = time.monotonic()
        while sum(len(hostile.received) for hostile in hostile_receivers) < 12:
            assert time.monotonic() - began < 10, "the hostile receivers were never reached"
            await asyncio.sleep(0.05)
        ended: dict[str, float] = {}
        for _ in range(60):  # a healthy callback every 0.1 s, for two attempt timeouts
            job_id = await _end_with_callback(world.jobs, GOOD, receiver.url)
            ended[job_id] = time.monotonic()
            await asyncio.sleep(0.1)
        while len(receiver.received) < len(ended):
            assert time.monotonic() - began < 60, f"{len(receiver.received)} arrived"
            await asyncio.sleep(0.05)
        # Meanwhile the hostile tenants kept their receivers busy to the end.
        hanging_attempts = sum(len(hostile.received) for hostile in hostile_receivers[:2])
        assert hanging_attempts >= 8
        assert len(hostile_receivers[2].received) >= 4
    finally:
        await world.deliverer.stop(worker)
    late = sorted(got.at - ended[got.json["job_id"]] for got in receiver.received)
    p99 = late[int(len(late) * 0.99) - 1]
    assert p99 <= 2.0, f"healthy callbacks p50 {late[len(late) // 2]:.3f} s, p99 {p99:.3f} s"
    print(f"healthy callbacks p50 {late[len(late) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")


async def test_a_claim_passes_over_organizations_and_hosts_that_hold_their_share(
    world: World, receiver: Receiver
) -> None:
    database = database_of(world.jobs)
    hostile = HOSTILE[0]
    for _ in range(30):  # the oldest due messages are a full organization's
        await _end_with_callback(world.jobs, hostile, receiver.url + "?hostile")
    now = datetime.now(UTC)
    full_host = "http://Flooded.Example:8080"
    alerts = [payload.alert(f"{full_host}/a{n}", payload.JOB_STUCK, {}, now) for n in range(30)]
    await database.write(outbox.insert_messages, alerts)
    healthy = await _end_with_callback(world.jobs, GOOD, receiver.url)
    shares = claims.Shares(
        org_max=4,
        host_max=4,
        held_org={hostile.organization_id: 4},
        held_host={"flooded.example:8080": 4},
    )
    later = datetime.now(UTC) + timedelta(seconds=1)
    lease = later + timedelta(seconds=60)
    claimed = await database.write(claims.claim_due, later, lease, 4, shares)
    assert [(c.job_id, c.organization_id) for c in claimed] == [(healthy, GOOD.organization_id)]
    # With room in its share, an organization gets what the room allows, no more.
    shares = claims.Shares(org_max=4, host_max=4, held_org={hostile.organization_id: 1})
    claimed = await database.write(claims.claim_due, later, lease, 16, shares)
    by_org = Counter(c.organization_id for c in claimed)
    assert by_org[hostile.organization_id] == 3
    assert by_org[None] == 4  # the alerts, by their host's share only


async def test_behind_a_share_the_oldest_fill_a_claim_takes_the_next_due_of_the_others(
    world: World,
) -> None:
    database = database_of(world.jobs)
    began = datetime.now(UTC) - timedelta(minutes=1)
    flood = [
        payload.alert(f"http://flood.example/{n}", payload.JOB_STUCK, {}, began) for n in range(8)
    ]
    # Written after the flood, each due sooner than the one written before it.
    others = [
        payload.alert(
            f"http://host-{n}.example/", payload.JOB_STUCK, {}, began + timedelta(seconds=6 - n)
        )
        for n in range(6)
    ]
    await database.write(outbox.insert_messages, [*flood, *others])
    # A host held already, whose share four more would overfill: the claim reads past shares.
    shares = claims.Shares(org_max=4, host_max=2, held_host={"elsewhere.example": 1})
    lease = datetime.now(UTC) + timedelta(seconds=60)
    claimed = await database.write(claims.claim_due, datetime.now(UTC), lease, 4, shares)
    # The flood's host takes its share of two; the rest go to the two others due soonest.
    assert sorted(c.url for c in claimed) == [
        "http://flood.example/0",
        "http://flood.example/1",
        "http://host-4.example/",
        "http://host-5.example/",
    ]


async def test_a_free_sender_takes_the_least_busy_organizations_message() -> None:
    queue: FairQueue[str] = FairQueue(per_org=2, per_host=8)
    order: list[str] = []
    release, all_sent = asyncio.Event(), asyncio.Event()

    async def sender() -> None:  # three senders: the process's total
        while True:
            taken = await queue.get()
            order.append(taken.item)
            if len(order) == 6:
                all_sent.set()
            await release.wait()
            queue.done(taken)

    for n in range(4):
        queue.put("a", "a", f"a{n}")
    senders = [asyncio.create_task(sender()) for _ in range(3)]
    try:
        await asyncio.sleep(0.01)
        assert order == ["a", "a"]  # its cap, though a sender is free
        assert queue.blocked == 2
        queue.put("b", "b", "b0")
        queue.put("c", "c", "c0")
        await asyncio.sleep(0.01)
        assert order == ["a", "a", "b"]  # b went to the free sender; c waits for one
        release.set()
        await asyncio.wait_for(all_sent.wait(), 1)
        assert order[3] == "c", "c had nothing in flight: it goes before a's third"
        assert sorted(order) == ["a", "a", "a", "a", "b", "c"]
        assert queue.blocked == 0
    finally:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)


async def test_a_sender_that_stops_waiting_leaves_no_trace() -> None:
    queue: FairQueue[str] = FairQueue(per_org=1, per_host=8)
    gone = asyncio.create_task(queue.get())  # nothing queued: it waits
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0.01)
    sender = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.put("a", "a", "h")
    assert (await asyncio.wait_for(sender, 1)).item == "a"
    # Woken for a message, then stopped before it ran: another sender gets it.
    first, second = asyncio.create_task(queue.get()), asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.put("b", "b", "h")
    first.cancel()
    assert (await asyncio.wait_for(second, 1)).item == "b"
    assert queue.blocked == 0

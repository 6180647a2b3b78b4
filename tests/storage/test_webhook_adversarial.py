"""Receivers that misbehave, and callback URLs that point inward, on real loopback servers:
every answer ends as a recorded attempt, nothing is sent to an address the guard refuses,
and one slow receiver does not hold up the others."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select

from jobpulse import Actor, JobManager, Settings, ValidationError
from jobpulse.storage import outbox
from jobpulse.storage.sql_store import SqlJobStore, open_store
from jobpulse.storage.tables import callback_attempts
from jobpulse.webhooks import guard, payload
from jobpulse.webhooks.delivery import Deliverer, new_client
from tests.receiver import Receiver
from tests.sql import database_of

ALICE = Actor("org-a", "alice")


@dataclass
class Deliveries:
    store: SqlJobStore
    settings: Settings
    deliverer: Deliverer

    async def queue(self, url: str, count: int = 1) -> None:
        now = datetime.now(UTC)
        messages = [payload.alert(url, payload.JOB_STUCK, {"n": n}, now) for n in range(count)]
        await database_of(self.store).write(outbox.insert_messages, messages)

    async def attempts(self) -> list[Any]:
        def read(connection: Connection) -> list[Any]:
            return list(
                connection.execute(select(callback_attempts).order_by(callback_attempts.c.id))
            )

        return await database_of(self.store).read(read)


@pytest.fixture
async def open_world(database_url: str) -> AsyncIterator[Deliveries]:
    """Deliveries to loopback allowed (the receivers live there), a short timeout."""
    settings = Settings(
        database_url=database_url,
        webhook_allow_private=True,
        webhook_timeout_s=1,
        webhook_lease_s=6,
        webhook_retry_schedule="0,30",
        webhook_concurrency=16,
        webhook_host_concurrency=4,
    )
    async with _deliveries(settings) as deliveries:
        yield deliveries


@pytest.fixture
async def guarded_world(database_url: str) -> AsyncIterator[Deliveries]:
    """Deliveries as in production: loopback and private addresses refused."""
    settings = Settings(database_url=database_url, webhook_timeout_s=2, webhook_lease_s=10)
    async with _deliveries(settings) as deliveries:
        yield deliveries


@asynccontextmanager
async def _deliveries(settings: Settings) -> AsyncIterator[Deliveries]:
    store = open_store(settings)
    try:
        async with new_client(settings) as sender:
            yield Deliveries(store, settings, Deliverer(store, settings, sender))
    finally:
        await store.close()


@pytest.fixture
def trickle() -> Iterator[Receiver]:
    """Answers 200, then a byte every 0.3 s for ever."""
    served = Receiver(body=lambda: iter(lambda: b".", None), pause_s=0.3)
    yield served
    served.close()


async def test_a_trickling_receiver_ends_at_the_deadline_and_is_sent_once(
    open_world: Deliveries, trickle: Receiver, receiver: Receiver
) -> None:
    await open_world.queue(trickle.url)
    await open_world.queue(receiver.url, 10)
    began = time.monotonic()
    await open_world.deliverer.run_once()
    assert time.monotonic() - began < 3
    assert len(receiver.received) == 10
    attempts = await open_world.attempts()
    slow = [a for a in attempts if a.status_code is None]
    assert len(slow) == 1
    assert "no answer within 1s" in slow[0].error
    assert slow[0].state == "retrying"
    assert len(trickle.received) == 1


async def test_two_workers_never_send_one_message_at_once(
    open_world: Deliveries, trickle: Receiver
) -> None:
    await open_world.queue(trickle.url)
    other = Deliverer(open_world.store, open_world.settings, open_world.deliverer.sender)
    workers = [asyncio.create_task(d.run()) for d in (open_world.deliverer, other)]
    await asyncio.sleep(3)
    for deliverer, worker in zip((open_world.deliverer, other), workers, strict=True):
        await deliverer.stop(worker)
    assert len(trickle.received) == 1  # its retry is due in 30 s
    assert len(await open_world.attempts()) == 1


@pytest.mark.parametrize(
    "retry_after",
    ["1000000000000", "1e20", "-5", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", "²"],
)
async def test_any_retry_after_is_a_recorded_attempt_with_a_sane_next_time(
    open_world: Deliveries, retry_after: str
) -> None:
    served = Receiver(statuses=[503], headers={"Retry-After": retry_after})
    try:
        await open_world.queue(served.url)
        before = datetime.now(UTC)
        assert await open_world.deliverer.run_once() == 1
    finally:
        served.close()
    [attempt] = await open_world.attempts()
    assert attempt.status_code == 503
    assert attempt.state == "retrying"
    assert before <= attempt.next_attempt_at <= before + timedelta(seconds=30 * 1.1 + 1)


async def test_a_huge_answer_is_cut_and_memory_stays_flat(
    open_world: Deliveries,
) -> None:
    mib = b"x" * (1024 * 1024)
    served = Receiver(body=lambda: (mib for _ in range(200)))
    try:
        await open_world.queue(served.url)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        began = time.monotonic()
        assert await open_world.deliverer.run_once() == 1
        assert time.monotonic() - began < 1
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    finally:
        served.close()
    [attempt] = await open_world.attempts()
    assert attempt.state == "delivered"
    assert "cut at 64 KiB" in attempt.error
    assert grown_kib < 20 * 1024


async def test_a_redirect_is_not_followed(open_world: Deliveries, receiver: Receiver) -> None:
    served = Receiver(statuses=[302], headers={"Location": receiver.url})
    try:
        await open_world.queue(served.url)
        await open_world.deliverer.run_once()
    finally:
        served.close()
    [attempt] = await open_world.attempts()
    assert (attempt.status_code, attempt.error, attempt.state) == (302, "HTTP 302", "retrying")
    assert receiver.received == []


async def test_a_receivers_cookie_is_never_sent_back(open_world: Deliveries) -> None:
    # Kept, it would ride on every later callback to that host, whoever's job it is about.
    served = Receiver(headers={"Set-Cookie": "session=org-a; Path=/"})
    named = served.url.replace("127.0.0.1", "localhost")  # cookies of IP addresses are not kept
    try:
        for _ in range(2):
            await open_world.queue(named)
            await open_world.deliverer.run_once()
    finally:
        served.close()
    assert len(served.received) == 2
    assert [received.headers.get("cookie") for received in served.received] == [None, None]


async def test_one_hanging_receiver_does_not_slow_the_others(
    open_world: Deliveries, receiver: Receiver
) -> None:
    hanging = Receiver()
    hanging.released.clear()  # holds every request until closed
    try:
        await open_world.queue(hanging.url, 40)
        await open_world.queue(receiver.url, 60)
        worker = asyncio.create_task(open_world.deliverer.run())
        began = time.monotonic()
        while len(receiver.received) < 60:
            assert time.monotonic() - began < 0.9, f"{len(receiver.received)} of 60 arrived"
            await asyncio.sleep(0.01)
        assert len(hanging.received) <= 4  # its host's share of the slots
        await open_world.deliverer.stop(worker)
    finally:
        hanging.close()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names the tests make up, and what they resolve to, in order of asking."""
    answers: dict[str, list[str]] = {}
    real = guard.lookup

    async def lookup(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
        if host not in answers:
            return await real(host, port)
        address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, address)]

    monkeypatch.setattr(guard, "lookup", lookup)
    return answers


async def test_a_name_for_loopback_gets_nothing(
    guarded_world: Deliveries, receiver: Receiver, dns: dict[str, list[str]]
) -> None:
    dns["inside.test"] = ["127.0.0.1"]
    port = receiver.url.split(":")[2].split("/")[0]
    await guarded_world.queue(f"http://inside.test:{port}/hook")
    await guarded_world.deliverer.run_once()
    [attempt] = await guarded_world.attempts()
    assert "refused" in attempt.error
    assert "127.0.0.1 is not a public address" in attempt.error
    assert receiver.received == []


async def test_rebinding_after_the_check_gets_nothing(
    database_url: str, guarded_world: Deliveries, receiver: Receiver, dns: dict[str, list[str]]
) -> None:
    dns["rebind.test"] = ["93.184.215.14", "127.0.0.1"]  # public when checked, then loopback
    port = receiver.url.split(":")[2].split("/")[0]
    jobs = JobManager(guarded_world.store)
    job = await jobs.create_job(
        ALICE, status="running", callback_url=f"http://rebind.test:{port}/hook"
    )
    await jobs.update_job(ALICE, job.id, stop_reason="end_turn")
    await guarded_world.deliverer.run_once()
    [attempt] = await guarded_world.attempts()
    assert "refused" in attempt.error
    assert receiver.received == []


SPELLINGS = ["127.1", "2130706433", "0x7f.1", "0177.0.0.1", "[::ffff:7f00:1]", "[::1]", "0"]


@pytest.mark.parametrize("host", SPELLINGS)
async def test_every_spelling_of_loopback_is_refused_on_create_and_at_delivery(
    guarded_world: Deliveries, receiver: Receiver, host: str
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://{host}:{port}/hook"
    with pytest.raises(ValidationError, match="not a public address"):
        await JobManager(guarded_world.store).create_job(ALICE, callback_url=url)
    await guarded_world.queue(url)
    await guarded_world.deliverer.run_once()
    [attempt] = await guarded_world.attempts()
    assert "refused" in attempt.error
    assert receiver.received == []


class FakeProxy:
    """An HTTP proxy on loopback that records each request line and answers 200 itself
    (it forwards nothing: the receivers it is asked for are made up)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.requests.append(head.split("\r\n", 1)[0])
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


async def test_a_configured_proxy_carries_deliveries_and_the_guard_still_holds(
    database_url: str, dns: dict[str, list[str]]
) -> None:
    # Public when the guard asks, loopback after: were the proxy bypassed, the client's own
    # resolver would get loopback and refuse it, so nothing ever leaves this machine.
    dns["public.test"] = ["93.184.215.14", "127.0.0.1"]
    dns["inside.test"] = ["127.0.0.1"]
    proxy = FakeProxy()
    async with proxy as proxy_url:
        settings = Settings(database_url=database_url, webhook_proxy=proxy_url)
        async with _deliveries(settings) as world:
            await world.queue("http://public.test/hook")
            await world.queue("http://inside.test/hook")
            assert await world.deliverer.run_once() == 2
            attempts = {a.state: a for a in await world.attempts()}
    assert proxy.requests == ["POST http://public.test/hook HTTP/1.1"]
    assert attempts["delivered"].status_code == 200
    assert "refused" in attempts["retrying"].error

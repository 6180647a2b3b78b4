"""GET /v1/jobs/stream and /v1/jobs/{id}/stream on a real uvicorn server on loopback, on
SQLite and PostgreSQL: live events in each caller's view only, filters, resuming with
Last-Event-ID without loss or repeat under concurrent writers, and the order of events from
transactions that commit out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from jobpulse import Actor, Settings
from jobpulse.api import create_app
from jobpulse.api.protocol import server_options
from jobpulse.api.stream import encode, encode_beat
from jobpulse.feed import EventFeed, TooSlowError
from jobpulse.jobs.hooks import Hooks
from jobpulse.jobs.manager import JobManager
from jobpulse.listing import JobFilter
from jobpulse.storage import events
from jobpulse.storage.events import Position
from jobpulse.storage.sql_store import open_store


@dataclass
class Served:
    url: str
    app: FastAPI

    @property
    def jobs(self) -> JobManager:
        jobs: JobManager = self.app.state.jobs
        return jobs

    async def key(self, org: str, user: str, admin: bool = False) -> dict[str, str]:
        _key, secret = await self.app.state.keys.create(
            organization_id=org, user_id=user, is_admin=admin
        )
        return {"Authorization": f"Bearer {secret}"}


@contextlib.asynccontextmanager
async def serve(database_url: str, **settings: Any) -> AsyncIterator[Served]:
    """A server as `jobpulse serve` runs one (its protocol and bounds), on loopback."""
    configured = Settings(database_url=database_url, **settings)
    app = create_app(configured)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        **server_options(configured),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    async with serve(database_url) as running:
        yield running


@dataclass
class Event:
    id: str | None
    event: str | None
    data: Any


@dataclass
class Listener:
    """Reads a stream into `events` until closed."""

    received: list[Event] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def wait_for(self, count: int, within_s: float = 10.0) -> list[Event]:
        async with asyncio.timeout(within_s):
            while len(self.received) < count:
                assert self.task is not None
                if self.task.done():
                    self.task.result()
                    raise AssertionError(f"the stream ended after {len(self.received)}")
                await asyncio.sleep(0.01)
        return self.received

    async def close(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _read(
    url: str, headers: dict[str, str], params: dict[str, str], listener: Listener
) -> None:
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", url, headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        listener.opened.set()
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if "data" in fields:
                    data = json.loads(fields["data"])
                    listener.received.append(Event(fields.get("id"), fields.get("event"), data))
                fields = {}
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def listen(
    url: str, headers: dict[str, str], params: dict[str, str] | None = None
) -> Listener:
    listener = Listener()
    listener.task = asyncio.create_task(_read(url, headers, params or {}, listener))
    async with asyncio.timeout(10):
        await listener.opened.wait()
    await asyncio.sleep(0.1)  # the subscription is made once the response has begun
    return listener


async def eventually(check: Callable[[], bool], within_s: float = 10.0) -> None:
    """Wait until `check()` holds; TimeoutError past `within_s`."""
    async with asyncio.timeout(within_s):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


def moves(received: list[Event]) -> list[tuple[str, str | None, str]]:
    return [(e.data["job_id"], e.data["from_status"], e.data["to_status"]) for e in received]


async def test_a_stream_shows_its_callers_view_live(served: Served) -> None:
    alice = await served.key("org-a", "alice")
    bob = await served.key("org-a", "bob")
    admin = await served.key("org-a", "root", admin=True)
    eve = await served.key("org-b", "eve")
    stream = f"{served.url}/v1/jobs/stream"
    mine, everyone, outsider = (
        await listen(stream, alice),
        await listen(stream, admin),
        await listen(stream, eve),
    )
    async with httpx.AsyncClient(base_url=served.url) as http:
        job = (await http.post("/v1/jobs", json={}, headers=alice)).json()["id"]
        other = (await http.post("/v1/jobs", json={}, headers=bob)).json()["id"]
        await http.patch(f"/v1/jobs/{job}", json={"status": "running"}, headers=alice)
        await http.patch(f"/v1/jobs/{job}", json={"status": "created"}, headers=alice)  # 409
        await http.patch(f"/v1/jobs/{job}", json={"stop_reason": "end_turn"}, headers=alice)
    expected = [(job, None, "created"), (job, "created", "running"), (job, "running", "completed")]
    assert moves(await mine.wait_for(3)) == expected
    seen = await everyone.wait_for(4)
    assert sorted(moves(seen), key=str) == sorted([*expected, (other, None, "created")], key=str)
    await asyncio.sleep(0.3)
    assert len(mine.received) == 3, "a rejected attempt or another's job came through"
    assert outsider.received == []
    last = mine.received[-1]
    assert last.data["job_type"] == "job"
    assert last.data["stop_reason"] == "end_turn"
    assert Position.parse(last.id or "") is not None
    for listener in (mine, everyone, outsider):
        await listener.close()


async def test_filters_and_the_one_job_stream(served: Served) -> None:
    alice = await served.key("org-a", "alice")
    typed = await listen(f"{served.url}/v1/jobs/stream", alice, {"job_type": "agent_run"})
    async with httpx.AsyncClient(base_url=served.url) as http:
        agent = (await http.post("/v1/jobs", json={"job_type": "agent_run"}, headers=alice)).json()
        plain = (await http.post("/v1/jobs", json={}, headers=alice)).json()
        one = await listen(f"{served.url}/v1/jobs/{plain['id']}/stream", alice)
        await http.post(f"/v1/jobs/{agent['id']}/cancel", headers=alice)
        await http.post(f"/v1/jobs/{plain['id']}/cancel", headers=alice)
        bob = await served.key("org-a", "bob")
        hidden = await http.get(f"/v1/jobs/{plain['id']}/stream", headers=bob)
        assert hidden.status_code == 404
        bad = await http.get("/v1/jobs/stream", headers=alice | {"Last-Event-ID": "yesterday"})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "validation_error"
        unknown = await http.get("/v1/jobs/stream", params={"limit": "5"}, headers=alice)
        assert unknown.status_code == 422
    assert moves(await typed.wait_for(2)) == [
        (agent["id"], None, "created"),
        (agent["id"], "created", "cancelled"),
    ]
    assert moves(await one.wait_for(1)) == [(plain["id"], "created", "cancelled")]
    await asyncio.sleep(0.2)
    assert len(typed.received) == 2
    assert len(one.received) == 1
    await typed.close()
    await one.close()


async def test_heartbeats_come_only_to_streams_that_ask(served: Served) -> None:
    alice = await served.key("org-a", "alice")
    bob = await served.key("org-a", "bob")
    async with httpx.AsyncClient(base_url=served.url) as http:
        job = (await http.post("/v1/jobs", json={"status": "running"}, headers=alice)).json()
        other = (await http.post("/v1/jobs", json={"status": "running"}, headers=bob)).json()
        beats = await listen(f"{served.url}/v1/jobs/stream", alice, {"heartbeats": "true"})
        quiet = await listen(f"{served.url}/v1/jobs/{job['id']}/stream", alice)
        await http.post(f"/v1/jobs/{other['id']}/heartbeat", headers=bob)  # not alice's
        await http.post(f"/v1/jobs/{job['id']}/heartbeat", headers=alice)
        await http.patch(f"/v1/jobs/{job['id']}", json={"status": "completed"}, headers=alice)
    got = await beats.wait_for(2)
    assert [(e.event, e.data["job_id"]) for e in got] == [
        ("heartbeat", job["id"]),
        (None, job["id"]),
    ]
    assert got[0].id is None, "a heartbeat has no position"
    assert got[0].data["at"] is not None
    assert [e.event for e in await quiet.wait_for(1)] == [None]
    await asyncio.sleep(0.3)
    assert len(beats.received) == 2
    assert len(quiet.received) == 1
    await beats.close()
    await quiet.close()


async def test_resuming_loses_and_repeats_nothing_under_concurrent_writers(
    served: Served,
) -> None:
    alice = await served.key("org-a", "alice")
    actor = Actor("org-a", "alice")
    stream = f"{served.url}/v1/jobs/stream"
    first = await listen(stream, alice)

    async def writer(rounds: int) -> None:
        for _ in range(rounds):
            job = await served.jobs.create_job(actor)
            await served.jobs.update_job(actor, job.id, status="running")
            await served.jobs.update_job(actor, job.id, status="completed")

    await asyncio.gather(*(writer(5) for _ in range(8)))  # 120 events
    before = await first.wait_for(30)
    await first.close()
    resume_after = before[29]
    kept = before[:30]
    await asyncio.gather(*(writer(5) for _ in range(8)))  # 120 more, none of them seen
    second = await listen(stream, alice | {"Last-Event-ID": resume_after.id or ""})
    await asyncio.gather(*(writer(2) for _ in range(8)))  # 48 more while it is open
    after = await second.wait_for(288 - 30, within_s=20)
    await asyncio.sleep(0.3)
    await second.close()

    got = [(e.data["job_id"], e.data["to_status"]) for e in kept + after]
    assert len(after) == 258, "an event was sent twice or an unrelated one came"
    assert len(set(got)) == 288
    ids = [Position.parse(e.id or "") or Position(-1, -1) for e in kept + after]
    assert ids == sorted(ids), "positions must only grow"
    assert ids[0] > Position(-1, -1)
    stored = await served.jobs.list_jobs(actor, page=None)
    assert stored  # every job's three events are among those received
    for job in await served.jobs.list_jobs(actor):
        for status in ("created", "running", "completed"):
            assert (job.id, status) in set(got)


async def test_out_of_order_commits_are_read_in_a_resumable_order(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite commits one transaction at a time, in the order of its ids")
    store = open_store(Settings(database_url=database_url))
    jobs = JobManager(store)
    job = await jobs.create_job(Actor("org-a", "alice"))
    start = (await store.database.read(events.start)).position
    raw = database_url.replace("postgresql+asyncpg://", "postgresql://")
    slow, fast = await asyncpg.connect(raw), await asyncpg.connect(raw)
    insert = (
        "INSERT INTO job_events (job_id, from_status, to_status, applied, reason, at)"
        " VALUES ($1, 'created', 'created', true, $2, now()) RETURNING id"
    )
    try:
        slow_tx = slow.transaction()
        await slow_tx.start()
        slow_id = await slow.fetchval(insert, job.id, "slow")
        fast_id = await fast.fetchval(insert, job.id, "fast")  # commits at once
        assert fast_id > slow_id
        # The fast event is committed, but an older transaction may still write below it.
        seen = await store.database.read(events.after, start, 100)
        assert [h.event.reason for h in seen if h.event.reason != "created"] == []
        await slow_tx.commit()
        # Visible as soon as no older transaction of this database is open (another
        # database's on the same server holds nothing back: see the next test).
        seen = await store.database.read(events.after, start, 100)
        assert [h.event.reason for h in seen if h.event.reason in ("slow", "fast")] == [
            "slow",
            "fast",
        ]
    finally:
        await slow.close()
        await fast.close()
        await jobs.close()


async def test_a_transaction_open_in_another_database_holds_no_stream_back(
    database_url: str,
) -> None:
    """Transaction ids are the server's: a write transaction left open in another database of
    a shared server (here `postgres`'s) is older than every commit of ours, and the stream
    waited for it to end before showing any of them.
    """
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writes are its own database's alone")
    store = open_store(Settings(database_url=database_url))
    jobs = JobManager(store)
    raw = database_url.replace("postgresql+asyncpg://", "postgresql://")
    elsewhere = await asyncpg.connect(raw.rsplit("/", 1)[0] + "/postgres")
    try:
        open_there = elsewhere.transaction()
        await open_there.start()
        await elsewhere.fetchval("SELECT pg_current_xact_id()")  # it holds an id, and waits
        start = (await store.database.read(events.start)).position
        job = await jobs.create_job(Actor("org-a", "alice"))
        await jobs.update_job(Actor("org-a", "alice"), job.id, status="running")
        seen = await store.database.read(events.after, start, 100)
        assert [(h.event.job_id, h.event.to_status) for h in seen] == [
            (job.id, "created"),
            (job.id, "running"),
        ]
        await open_there.rollback()
    finally:
        await elsewhere.close()
        await jobs.close()


def parsed(encoded: bytes) -> list[tuple[Position, str]]:
    """(position, job id) of each event in a stream's bytes."""
    found = []
    for block in encoded.decode().replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            position = Position.parse(fields["id"])
            assert position is not None
            found.append((position, json.loads(fields["data"])["job_id"]))
    return found


async def drain(follow: AsyncGenerator[bytes, None], seen: list[tuple[Position, str]]) -> None:
    while True:
        seen += parsed(await asyncio.wait_for(anext(follow), 5))


async def test_a_subscriber_that_falls_behind_is_dropped_then_resumes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("jobpulse.feed.BUFFER_MAX", 5)
    store = open_store(Settings(database_url=database_url))
    feed = EventFeed(store, encode, encode_beat)
    jobs = JobManager(store, hooks=Hooks(events=feed.committed))
    running = asyncio.create_task(feed.run())
    actor = Actor("org-a", "alice")
    try:
        follow = feed.follow(actor, JobFilter())
        waiting = asyncio.ensure_future(anext(follow))  # subscribes
        await asyncio.sleep(0.1)
        made = [(await jobs.create_job(actor)).id]
        seen = parsed(await asyncio.wait_for(waiting, 5))
        assert [job for _, job in seen] == made
        for _ in range(10):  # nobody reads: the buffer fills
            made.append((await jobs.create_job(actor)).id)
            await asyncio.sleep(0.06)
        await asyncio.sleep(1.2)
        with pytest.raises(TooSlowError):  # what was kept, then the drop
            await drain(follow, seen)
        assert len(seen) <= 1 + 5
        await follow.aclose()
        resumed = feed.follow(actor, JobFilter(), seen[-1][0])
        while len(seen) < len(made):
            seen += parsed(await asyncio.wait_for(anext(resumed), 5))
        assert [job for _, job in seen] == made, "every event once, in order"
        await resumed.aclose()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await jobs.close()


async def test_a_stream_started_now_leaves_out_what_was_committed_before_it(
    database_url: str,
) -> None:
    store = open_store(Settings(database_url=database_url))
    feed = EventFeed(store, encode, encode_beat)
    jobs = JobManager(store, hooks=Hooks(events=feed.committed))
    running = asyncio.create_task(feed.run())
    actor = Actor("org-a", "alice")
    raw = database_url.replace("postgresql+asyncpg://", "postgresql://")
    # On PostgreSQL an older transaction left open holds every position back: the job's
    # creation, committed after it began, is not yet final when the stream starts.
    older = await asyncpg.connect(raw) if raw.startswith("postgresql") else None
    try:
        if older is not None:
            await older.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            await older.fetchval("SELECT pg_current_xact_id()")  # it takes a transaction id
        job = await jobs.create_job(actor)
        follow = feed.follow(actor, JobFilter(job_id=job.id))
        waiting = asyncio.ensure_future(anext(follow))  # subscribes, after the creation
        await asyncio.sleep(0.2)
        if older is not None:
            await older.execute("COMMIT")
        await jobs.cancel_job(actor, job.id)
        received = await asyncio.wait_for(waiting, 5)
        moved = [
            json.loads(line[len("data: ") :])["to_status"]
            for line in received.decode().splitlines()
            if line.startswith("data: ")
        ]
        assert moved == ["cancelled"]  # the cancel alone: its creation came before the stream
        assert len(await jobs.list_events(actor, job.id)) == 2
        await follow.aclose()
    finally:
        if older is not None:
            await older.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await jobs.close()


async def test_a_client_that_stops_reading_is_dropped(database_url: str) -> None:
    async with serve(database_url, send_timeout_s=1.0) as served:
        alice = await served.key("org-a", "alice")
        feed: EventFeed = served.app.state.feed
        reader = await listen(f"{served.url}/v1/jobs/stream", alice)  # reads: kept
        host, port = served.url.removeprefix("http://").split(":")
        silent = socket.socket()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        silent.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(silent, (host, int(port)))
        request = (
            f"GET /v1/jobs/stream HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {alice['Authorization']}\r\n\r\n"
        )
        await loop.sock_sendall(silent, request.encode())  # and never reads a byte
        try:
            await eventually(lambda: feed.streams == 2)
            actor = Actor("org-a", "alice")
            written = 0

            async def write() -> None:  # events of ~1.3 kB until the server drops the stream
                nonlocal written
                while feed.streams == 2:
                    job = await served.jobs.create_job(actor)
                    await served.jobs.cancel_job(actor, job.id, "x" * 1000)
                    written += 2

            async with asyncio.timeout(120):
                await asyncio.gather(*(write() for _ in range(16)))
            print(f"dropped after {written} events")
            assert feed.streams == 1
            assert served.app.state.keys.grants.held == 1
            # The server aborted the connection: the silent client, reading at last, finds
            # its end (after what was in flight).
            with contextlib.suppress(ConnectionResetError):
                async with asyncio.timeout(10):
                    while await loop.sock_recv(silent, 65536):
                        pass
            # The client that reads has had every event and is still served.
            assert len(await reader.wait_for(written, within_s=30)) == written
            assert reader.task is not None
            assert not reader.task.done()
        finally:
            silent.close()
            await reader.close()

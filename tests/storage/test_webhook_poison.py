"""A stored row or message nobody can use hurts only itself: the outbox delivers everything
else, records the bad message's attempts on its schedule and then leaves it be; a job whose
stored metadata predates the JSON policy still reads, lists and ends."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, select, text, update

from jobpulse import Actor, JobFilter, JobManager, Settings
from jobpulse.storage import outbox
from jobpulse.storage.migrate import upgrade
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.tables import jobs
from jobpulse.storage.tables import outbox as outbox_table
from jobpulse.webhooks import payload
from jobpulse.webhooks.delivery import Deliverer, new_client
from tests.conftest import MakeKey
from tests.receiver import Receiver
from tests.sql import database_of

ALICE = Actor("org-a", "alice")


@pytest.fixture
async def delivery(database_url: str) -> AsyncIterator[tuple[JobManager, Deliverer]]:
    settings = Settings(
        database_url=database_url, webhook_allow_private=True, webhook_retry_schedule="0,0.05"
    )
    store = open_store(settings)
    async with new_client(settings) as http:
        yield (
            JobManager(store, allow_private_callbacks=True),
            Deliverer(store, settings, http),
        )
    await store.close()


def queue_unreadable(connection: Connection, url: str) -> None:
    """A message whose payload is not a JSON object (what a value nobody can read becomes)."""
    message = payload.alert(url, payload.JOB_STUCK, {}, datetime.now(UTC))
    outbox.insert_messages(connection, [replace(message, payload="not an object")])  # type: ignore[arg-type]


def messages(connection: Connection) -> list[tuple[str, str, int]]:
    rows = connection.execute(
        select(outbox_table.c.event_type, outbox_table.c.state, outbox_table.c.attempts).order_by(
            outbox_table.c.id
        )
    )
    return [(row.event_type, row.state, row.attempts) for row in rows]


async def test_an_unreadable_message_fails_alone_then_rests(
    delivery: tuple[JobManager, Deliverer], receiver: Receiver
) -> None:
    jobs_, deliverer = delivery
    await database_of(jobs_).write(queue_unreadable, receiver.url)
    job = await jobs_.create_job(ALICE, status="running", callback_url=receiver.url)
    await jobs_.update_job(ALICE, job.id, stop_reason="end_turn")
    deadline = time.monotonic() + 10
    while (await database_of(jobs_).read(messages))[0][1] == "pending":
        assert time.monotonic() < deadline, await database_of(jobs_).read(messages)
        await deliverer.run_once()
        await asyncio.sleep(0.06)
    assert await database_of(jobs_).read(messages) == [
        ("job.stuck", "exhausted", 2),
        ("job.completed", "delivered", 1),
    ]
    assert [r.json["job_id"] for r in receiver.received] == [job.id]
    assert await deliverer.run_once() == 0  # it rests: nothing claimed again, no tight loop


@pytest.fixture
def sqlite_url(database_url: str) -> str:
    if not database_url.startswith("sqlite"):
        pytest.skip("only SQLite ever kept NaN")
    return database_url


def poison_sqlite(connection: Connection, job_id: str) -> None:
    """Rows as the SQLite of before the JSON policy kept them (and before bodies were kept)."""
    connection.execute(
        text("UPDATE jobs SET metadata = :bad WHERE id = :id"),
        {"bad": '{"x": NaN, "k": "v"}', "id": job_id},
    )
    connection.execute(text("UPDATE outbox SET payload = :bad, body = NULL"), {"bad": '{"x": NaN}'})


async def test_nan_kept_by_sqlite_reads_as_null_and_is_delivered(
    sqlite_url: str, delivery: tuple[JobManager, Deliverer], receiver: Receiver
) -> None:
    jobs_, deliverer = delivery
    job = await jobs_.create_job(ALICE, status="running", callback_url=receiver.url)
    await jobs_.update_job(ALICE, job.id, stop_reason="end_turn")
    await database_of(jobs_).write(poison_sqlite, job.id)
    assert (await jobs_.get_job(ALICE, job.id)).metadata == {"x": None, "k": "v"}
    assert [found.id for found in await jobs_.list_jobs(ALICE)] == [job.id]
    while not receiver.received:
        assert await deliverer.run_once() == 1
    assert receiver.received[0].json == {"x": None}
    other = await jobs_.create_job(Actor("org-b", "bob"), status="running")
    assert (
        await jobs_.update_job(Actor("org-b", "bob"), other.id, status="failed")
    ).status == "failed"


async def test_migration_repairs_what_sqlite_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    await upgrade(url, "0003")
    # Rows as the code of revision 0003 wrote them, before the JSON policy.
    stamp = "2026-01-01 00:00:00.000000"
    with sqlite3.connect(path) as old:
        old.executemany(
            "INSERT INTO jobs (id, organization_id, user_id, job_type, status, background,"
            " metadata, created_at, updated_at) VALUES (?, 'org-a', 'alice', 'job',"
            " 'completed', 0, ?, ?, ?)",
            [("job-nan", '{"x": NaN, "k": "v"}', stamp, stamp), ("job-bad", "{bad", stamp, stamp)],
        )
        old.execute(
            "INSERT INTO outbox (webhook_id, job_id, event_type, url, payload, state, attempts,"
            " next_attempt_at, created_at) VALUES ('msg_1', 'job-nan', 'job.completed',"
            " 'http://127.0.0.1:9/', '{\"x\": NaN}', 'pending', 0, ?, ?)",
            (stamp, stamp),
        )
    await upgrade(url)
    manager = JobManager.from_settings(Settings(database_url=url))
    try:
        found = await manager.list_jobs(ALICE, query=JobFilter(metadata={"k": "v"}))
        assert [j.metadata for j in found] == [{"x": None, "k": "v"}]
        stored = await database_of(manager).read(
            lambda c: c.execute(select(outbox_table.c.payload)).scalar_one()
        )
        assert stored == {"x": None}
    finally:
        await manager.close()


def nest(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


async def test_metadata_too_deep_from_before_the_policy_still_reads_lists_and_ends(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", headers=headers, json={"status": "running"})).json()

    def poison(connection: Connection) -> None:
        deep = json.loads(nest(300))  # what the API accepted before the JSON policy
        connection.execute(update(jobs).where(jobs.c.id == job["id"]).values(metadata=deep))

    await database_of(app.state.jobs).write(poison)
    shown = await http.get(f"/v1/jobs/{job['id']}", headers=headers)
    assert shown.status_code == 200
    assert str(shown.json()["metadata"]).count("{") == 32
    listed = await http.get("/v1/jobs", headers=headers)
    assert listed.status_code == 200
    assert [j["id"] for j in listed.json()] == [job["id"]]
    done = await http.patch(f"/v1/jobs/{job['id']}", headers=headers, json={"stop_reason": "error"})
    assert done.status_code == 200
    assert done.json()["status"] == "failed"

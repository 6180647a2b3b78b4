"""The group-committing writer after a failure at each step of a batch: the failing request
alone fails and leaves nothing behind, its neighbours in the batch commit, and every batch
after it starts on a clean connection (no open cursor, savepoint or aborted transaction)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import Connection, func, select

from jobpulse import Actor, JobManager
from jobpulse.errors import UnavailableError
from jobpulse.storage import keys
from jobpulse.storage.postgres import connections
from jobpulse.storage.tables import api_keys
from tests.sql import database_of

ALICE = Actor("org-a", "alice")
KEY = {
    "id": "key-poison",
    "prefix": "jp_poison",
    "organization_id": "org-x",
    "user_id": "x",
    "is_admin": False,
    "name": None,
    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    "revoked_at": None,
    "key_hash": "0" * 64,
}


class InjectedError(Exception):
    """The failure a test command raises."""


def write_then_fail(connection: Connection) -> None:
    keys.insert_key(connection, KEY)
    raise InjectedError


def leave_a_cursor_open_then_fail(connection: Connection) -> None:
    rows = connection.exec_driver_sql("SELECT id FROM job_events")
    assert rows.fetchone() is not None  # more rows wait on the cursor
    keys.insert_key(connection, KEY)
    raise InjectedError


def stop_reading_an_update_then_fail(connection: Connection) -> None:
    # As the outbox claim did when a payload could not be read: the UPDATE … RETURNING is
    # still running when the error leaves.
    rows = connection.exec_driver_sql("UPDATE jobs SET job_type = job_type RETURNING id")
    assert rows.fetchone() is not None
    keys.insert_key(connection, KEY)
    raise InjectedError


def fail_inside_a_savepoint(connection: Connection) -> None:
    with connection.begin_nested():
        keys.insert_key(connection, KEY)
        raise InjectedError


def leave_a_savepoint_open_then_fail(connection: Connection) -> None:
    connection.begin_nested()
    keys.insert_key(connection, KEY)
    raise InjectedError


def break_the_transaction(connection: Connection) -> None:
    keys.insert_key(connection, KEY)
    connection.exec_driver_sql("SELECT no_such_column FROM jobs")


def count_poison(connection: Connection) -> int:
    statement = select(func.count()).where(api_keys.c.id == KEY["id"])
    return int(connection.execute(statement).scalar_one())


@pytest.mark.parametrize(
    "failure",
    [
        write_then_fail,
        leave_a_cursor_open_then_fail,
        stop_reading_an_update_then_fail,
        fail_inside_a_savepoint,
        leave_a_savepoint_open_then_fail,
        break_the_transaction,
    ],
)
async def test_a_failing_request_fails_alone_and_the_writer_recovers(
    manager: JobManager, failure: Callable[[Connection], None]
) -> None:
    for _ in range(3):  # rows for a cursor to hold
        await manager.create_job(ALICE, status="running")
    for _round in range(2):
        outcomes = await asyncio.gather(
            manager.create_job(ALICE, status="running"),
            database_of(manager).write(failure),
            manager.create_job(ALICE, status="running", metadata={"n": 1}),
            return_exceptions=True,
        )
        first, failed, last = outcomes
        assert isinstance(failed, Exception)
        assert not isinstance(first, BaseException)
        assert not isinstance(last, BaseException)
        assert await database_of(manager).read(count_poison) == 0
        # The next batches, one request at a time and several together, go through.
        job = await manager.create_job(ALICE, status="running")
        done = await manager.update_job(ALICE, job.id, stop_reason="end_turn")
        assert done.status == "completed"
        together = await asyncio.gather(
            *(manager.create_job(ALICE, idempotency_key=f"k{_round}-{n}") for n in range(5))
        )
        assert len({created.id for created in together}) == 5
    assert (await manager.count_jobs(ALICE)).total == 3 + 2 * (2 + 1 + 5)


async def test_background_work_waits_for_every_queued_change(
    manager: JobManager, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL runs background work beside its writers, not after them")
    order: list[str] = []

    def note(name: str) -> Callable[[Connection], str]:
        def command(connection: Connection) -> str:
            connection.exec_driver_sql("SELECT 1")
            order.append(name)
            return name

        return command

    gate = threading.Event()

    def held(connection: Connection) -> str:
        gate.wait(10)  # the writer is busy while the rest queues up
        return "gate"

    first = asyncio.ensure_future(database_of(manager).write(held))
    await asyncio.sleep(0.05)
    background = asyncio.ensure_future(database_of(manager).write_background(note("prune")))
    changes = [asyncio.ensure_future(database_of(manager).write(note(f"c{n}"))) for n in range(5)]
    await asyncio.sleep(0.05)
    gate.set()
    done = await asyncio.gather(first, background, *changes)
    assert done == ["gate", "prune", "c0", "c1", "c2", "c3", "c4"]
    assert order == ["c0", "c1", "c2", "c3", "c4", "prune"]  # queued first, run last


async def test_reads_answer_after_the_database_dropped_every_pooled_connection(
    manager: JobManager, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL server can terminate the backends of a pool")
    import asyncpg

    job = await manager.create_job(ALICE, status="running")
    # Fill the pool with several open connections, then have the server drop them all.
    await asyncio.gather(*(manager.get_job(ALICE, job.id) for _ in range(8)))
    admin = await asyncpg.connect(database_url)
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert dropped > 0
    for _ in range(3):  # a read is safe to run again on a fresh connection
        assert (await manager.get_job(ALICE, job.id)).status == "running"
        assert [e.to_status for e in await manager.list_events(ALICE, job.id)] == ["running"]


async def test_one_write_at_most_fails_after_the_database_dropped_every_connection(
    manager: JobManager, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL server can terminate the backends of a pool")
    import asyncpg

    jobs = [await manager.create_job(ALICE, status="running") for _ in range(8)]
    # Several writers and readers hold pooled connections; the server drops them all.
    await asyncio.gather(*(manager.update_job(ALICE, j.id, metadata={"n": 1}) for j in jobs))
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    failed = 0
    for job in jobs:
        try:
            await manager.update_job(ALICE, job.id, metadata={"n": 2})
        except UnavailableError:  # the one write that found its connection gone
            failed += 1
    assert failed <= 1
    stored = [await manager.get_job(ALICE, job.id) for job in jobs]
    assert sum(job.metadata["n"] == 2 for job in stored) == len(jobs) - failed


def transaction_of(log: list[object], name: str) -> Callable[[Connection], str]:
    def command(connection: Connection) -> str:
        log.append(connection.get_transaction())
        return name

    return command


def held_until(gate: threading.Event, then: Callable[[Connection], str]) -> Callable[..., str]:
    def command(connection: Connection) -> str:
        gate.wait(10)  # changes queue up meanwhile
        return then(connection)

    return command


async def test_changes_that_come_in_during_background_work_join_its_transaction(
    manager: JobManager, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL runs background work beside its writers, not after them")
    log: list[object] = []
    gate = threading.Event()
    background = asyncio.ensure_future(
        database_of(manager).write_background(held_until(gate, transaction_of(log, "prune")))
    )
    await asyncio.sleep(0.05)
    changes = [
        asyncio.ensure_future(database_of(manager).write(transaction_of(log, f"c{n}")))
        for n in range(3)
    ]
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(background, *changes) == ["prune", "c0", "c1", "c2"]
    assert len(log) == 4
    assert all(transaction is log[0] for transaction in log)
    # A change on its own afterwards commits in a transaction of its own.
    assert await database_of(manager).write(transaction_of(log, "later")) == "later"
    assert log[-1] is not log[0]


async def test_a_joined_change_that_fails_fails_alone(
    manager: JobManager, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL runs background work beside its writers, not after them")
    gate = threading.Event()

    def insert_key(connection: Connection) -> str:
        keys.insert_key(connection, KEY | {"id": "key-background", "key_hash": "1" * 64})
        return "background"

    background = asyncio.ensure_future(
        database_of(manager).write_background(held_until(gate, insert_key))
    )
    await asyncio.sleep(0.05)
    before = asyncio.ensure_future(manager.create_job(ALICE, status="running"))
    failing = asyncio.ensure_future(database_of(manager).write(break_the_transaction))
    after = asyncio.ensure_future(manager.create_job(ALICE, status="running"))
    await asyncio.sleep(0.05)
    gate.set()
    done = await asyncio.gather(background, before, failing, after, return_exceptions=True)
    assert done[0] == "background"
    assert isinstance(done[2], Exception)
    assert not isinstance(done[1], BaseException)
    assert not isinstance(done[3], BaseException)
    assert await database_of(manager).read(count_poison) == 0
    stored = await database_of(manager).read(
        lambda c: c.execute(select(func.count()).where(api_keys.c.id == "key-background")).scalar()
    )
    assert stored == 1  # the background work committed, once
    assert (await manager.count_jobs(ALICE)).total == 2


def row_versions(connection: Connection) -> list[str]:
    """The transaction that last wrote each job (PostgreSQL's xmin), by job id."""
    return [row[0] for row in connection.exec_driver_sql("SELECT xmin::text FROM jobs ORDER BY id")]


async def test_creates_queued_at_once_go_in_two_overlapping_halves(
    manager: JobManager, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: there is no second one to build the other half")
    created = await asyncio.gather(*(manager.create_job(ALICE) for _ in range(16)))
    assert len({job.id for job in created}) == 16
    # Two statements of 8: the second built while the first ran.
    creates = sorted(Counter(await database_of(manager).read(row_versions)).values())
    assert creates == [8, 8]
    # Changes are not halved: their statement is mostly the database's work.
    await asyncio.gather(*(manager.update_job(ALICE, j.id, status="running") for j in created))
    assert list(Counter(await database_of(manager).read(row_versions)).values()) == [16]


async def test_a_batch_waiting_on_a_lock_does_not_hold_up_the_other_writes(
    manager: JobManager, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer, and no other process holds its rows")
    held, free = await asyncio.gather(manager.create_job(ALICE), manager.create_job(ALICE))
    other = await asyncpg.connect(database_url)  # another replica, in a transaction
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", held.id)
            waiting = asyncio.ensure_future(manager.update_job(ALICE, held.id, status="running"))
            await asyncio.sleep(0.3)
            assert not waiting.done(), "the job's row was not locked"
            moved = await asyncio.wait_for(manager.update_job(ALICE, free.id, status="running"), 5)
            assert moved.status == "running"
            assert not waiting.done()
    finally:
        await other.close()
    assert (await waiting).status == "running"  # once the other transaction ended


async def test_changes_that_come_while_a_batch_runs_go_together_after_it(
    manager: JobManager, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: batches never run side by side")
    monkeypatch.setattr(connections, "OVERLAP_AFTER_S", 60.0)  # the batch runs "briefly"
    slow, *jobs = [await manager.create_job(ALICE) for _ in range(11)]
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():  # the first batch waits on this row lock
            await other.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", slow.id)
            first = asyncio.ensure_future(manager.update_job(ALICE, slow.id, status="running"))
            await asyncio.sleep(0.1)
            later = []
            for job in jobs:  # one at a time, each of them free for a writer to take alone
                later.append(
                    asyncio.ensure_future(manager.update_job(ALICE, job.id, status="running"))
                )
                await asyncio.sleep(0.02)
            assert not any(change.done() for change in [first, *later])
    finally:
        await other.close()
    await asyncio.gather(first, *later)
    # The first batch alone, then the ten changes that came while it ran, in one.
    batches = Counter(await database_of(manager).read(row_versions))
    assert sorted(batches.values()) == [1, 10]


async def test_creates_are_not_held_back_by_a_batch_of_changes(
    manager: JobManager, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: batches never run side by side")
    monkeypatch.setattr(connections, "OVERLAP_AFTER_S", 60.0)
    slow = await manager.create_job(ALICE)
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", slow.id)
            held = asyncio.ensure_future(manager.update_job(ALICE, slow.id, status="running"))
            await asyncio.sleep(0.1)
            # Creates overlap by halves: they start beside the change's batch at once.
            created = await asyncio.wait_for(manager.create_job(ALICE), 5)
            assert not held.done()
    finally:
        await other.close()
    assert (await held).status == "running"
    assert (await manager.get_job(ALICE, created.id)).status == "created"

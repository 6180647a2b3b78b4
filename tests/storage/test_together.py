"""Transitions of one writer batch run together (one lock, one UPDATE, one INSERT of events on
PostgreSQL): the outcome is the one of applying them one by one in queue order, and one
request's failure is its own."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Connection, select, update
from sqlalchemy.util import await_only

from jobpulse import Actor, JobManager, Settings
from jobpulse.domain import Job, JobChange, JobEvent, JobStatus, Plan, plan_change
from jobpulse.errors import InvalidTransitionError, NotFoundError
from jobpulse.storage import changes, creations
from jobpulse.storage.creations import Creation
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.tables import jobs as jobs_table
from jobpulse.storage.tables import outbox
from jobpulse.storage.transitions import Transition, write_plans
from tests.clock import T0, Clock
from tests.sql import database_of

ALICE = Actor("org-a", "alice")
CALLBACK = "http://127.0.0.1:9/callback"
BOB = Actor("org-a", "bob")
STATUSES = ("pending", "running", "completed", "failed", "cancelled", "created")
#: Another writer's job with the idempotency key k07 (a replica's, inserted straight).
THEIRS_WITH_K07 = (
    "INSERT INTO jobs (id, organization_id, user_id, job_type, status, background, metadata,"
    " created_at, updated_at, idempotency_key) VALUES ('job-theirs', 'org-a', 'alice', 'job',"
    " 'created', false, '{}', now(), now(), 'k07')"
)


@pytest.fixture
async def jobs(database_url: str) -> AsyncIterator[JobManager]:
    # One writer: batches commit in queue order, so "one by one" has one meaning.
    settings = Settings(database_url=database_url, postgres_writers=1, write_batch_max=64)
    manager = JobManager(open_store(settings), Clock())
    yield manager
    await manager.close()


async def history(jobs: JobManager, ids: list[str]) -> list[object]:
    found: list[object] = []
    for job_id in ids:
        job = await jobs.get_job(ALICE, job_id)
        events = await jobs.list_events(ALICE, job_id)
        moves = [(e.from_status, e.to_status, e.applied, e.stop_reason) for e in events]
        found.append((job.status, job.stop_reason, job.metadata, moves))
    return found


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_gives_what_one_by_one_gives(jobs: JobManager, seed: int) -> None:
    rng = random.Random(seed)
    calls = [(rng.randrange(4), rng.choice(STATUSES), rng.randrange(100)) for _ in range(60)]

    async def run(ids: list[str], job: int, status: str, n: int) -> str:
        try:
            await jobs.update_job(ALICE, ids[job], status=status, metadata={"n": n})
        except InvalidTransitionError as exc:
            return exc.code
        return "ok"

    batched = [(await jobs.create_job(ALICE)).id for _ in range(4)]
    together = await asyncio.gather(*(run(batched, *call) for call in calls))
    alone = [(await jobs.create_job(ALICE)).id for _ in range(4)]
    one_by_one = [await run(alone, *call) for call in calls]
    assert together == one_by_one
    assert await history(jobs, batched) == await history(jobs, alone)


async def test_one_requests_failure_is_its_own(jobs: JobManager) -> None:
    mine = await jobs.create_job(ALICE, status="running")
    ended = await jobs.create_job(ALICE, status="running")
    await jobs.update_job(ALICE, ended.id, status="completed")
    theirs = await jobs.create_job(BOB)
    results = await asyncio.gather(
        jobs.update_job(ALICE, ended.id, status="running"),  # refused: recorded, raised
        jobs.update_job(ALICE, theirs.id, status="running"),  # not alice's
        jobs.update_job(ALICE, "job-missing", status="running"),
        jobs.update_job(ALICE, mine.id, metadata={"x" * 10: "y" * 70_000}),  # too big
        jobs.update_job(ALICE, mine.id, stop_reason="end_turn"),
        return_exceptions=True,
    )
    assert isinstance(results[0], InvalidTransitionError)
    assert isinstance(results[1], NotFoundError)
    assert isinstance(results[2], NotFoundError)
    assert type(results[3]).__name__ == "ValidationError"
    assert not isinstance(results[4], BaseException)
    assert (await jobs.get_job(ALICE, mine.id)).status == "completed"
    assert (await jobs.get_job(BOB, theirs.id)).status == "created"
    rejected = [e for e in await jobs.list_events(ALICE, ended.id) if not e.applied]
    assert [(e.from_status, e.to_status) for e in rejected] == [("completed", "running")]


def _finish(job: Job) -> Plan:
    return plan_change(job, JobChange(status=JobStatus.COMPLETED), T0, ALICE.user_id)


Batch = Callable[[Connection, str, list[str]], list[tuple[bool, Any]]]


def _moved_once(values: dict[str, object]) -> Batch:
    """A batch whose last request's job another writer changes to `values` after it was
    read, the first time it is planned: the others finish their jobs.
    """

    def batch(connection: Connection, target: str, others: list[str]) -> list[tuple[bool, Any]]:
        moved: list[str] = []

        def planner(job: Job) -> Plan:
            if not moved:  # a writer outside jobpulse, between the read and the write
                moved.append(job.id)
                connection.execute(
                    update(jobs_table).where(jobs_table.c.id == job.id).values(values)
                )
            return _finish(job)

        requests = [Transition(ALICE, job_id, _finish) for job_id in others]
        return write_plans(connection, [*requests, Transition(ALICE, target, planner)])

    return batch


@pytest.mark.parametrize("neighbours", [0, 3])
async def test_a_change_to_a_job_changed_meanwhile_is_planned_again(
    jobs: JobManager, neighbours: int
) -> None:
    target = await jobs.create_job(ALICE, status="running", metadata={"a": 1})
    others = [(await jobs.create_job(ALICE, status="running")).id for _ in range(neighbours)]
    batch = _moved_once({"metadata": {"a": 1, "b": 2}})
    outcomes = await database_of(jobs).write(lambda c: batch(c, target.id, others))
    assert all(ok for ok, _ in outcomes)
    done = await jobs.get_job(ALICE, target.id)
    assert (done.status, done.metadata) == ("completed", {"a": 1, "b": 2})  # nothing lost
    events = await jobs.list_events(ALICE, target.id)
    assert [e.to_status for e in events] == ["running", "completed"]
    for job_id in others:
        assert (await jobs.get_job(ALICE, job_id)).status == "completed"


@pytest.mark.parametrize("neighbours", [0, 3])
async def test_a_change_planned_for_a_status_the_job_lost_is_refused(
    jobs: JobManager, neighbours: int
) -> None:
    target = await jobs.create_job(ALICE, status="running")
    others = [(await jobs.create_job(ALICE, status="running")).id for _ in range(neighbours)]
    batch = _moved_once({"status": "failed"})
    outcomes = await database_of(jobs).write(lambda c: batch(c, target.id, others))
    ok, (_, plan) = outcomes[-1]
    assert ok  # refused, the refusal recorded (the manager raises its error after)
    assert isinstance(plan.error, InvalidTransitionError)
    assert plan.error.current_status == "failed"  # planned again from what it became
    assert (await jobs.get_job(ALICE, target.id)).status == "failed"
    events = await jobs.list_events(ALICE, target.id)
    moves = [(e.from_status, e.to_status, e.applied) for e in events]
    assert moves == [(None, "running", True), ("failed", "completed", False)]
    for job_id in others:  # the neighbours are not held back by it
        assert (await jobs.get_job(ALICE, job_id)).status == "completed"


async def test_writers_of_two_managers_lose_no_change(database_url: str) -> None:
    settings = Settings(database_url=database_url, postgres_writers=2, write_batch_max=16)
    managers = [
        JobManager(open_store(settings), Clock(), allow_private_callbacks=True) for _ in range(2)
    ]
    try:
        made = [
            await managers[0].create_job(ALICE, status="running", callback_url=CALLBACK)
            for _ in range(2)
        ]
        ids = [job.id for job in made]
        keys = [f"k{n}" for n in range(240)]
        await asyncio.gather(
            *(
                managers[n % 2].update_job(ALICE, ids[n % 2 ^ n // 2 % 2], metadata={key: n})
                for n, key in enumerate(keys)
            )
        )
        for index, job_id in enumerate(ids):
            job = await managers[1].get_job(ALICE, job_id)
            mine = {key: n for n, key in enumerate(keys) if n % 2 ^ n // 2 % 2 == index}
            assert job.metadata == mine  # every merge kept, whichever writer made it
        ends = [
            managers[n % 2].update_job(ALICE, ids[n % 2 ^ n // 2 % 2], status=status)
            for n, status in enumerate(["completed", "failed"] * 8)
        ]
        await asyncio.gather(*ends, return_exceptions=True)  # one ending a job wins
        rows = await database_of(managers[0]).read(
            lambda c: c.execute(select(outbox.c.job_id, outbox.c.payload)).all()
        )
        for job_id in ids:
            ended = await managers[1].get_job(ALICE, job_id)
            [payload] = [payload for of, payload in rows if of == job_id]  # its one callback
            assert payload["status"] == ended.status
    finally:
        for manager in managers:
            await manager.close()


async def _counted(database_url: str, counter: str) -> int:
    """A count of pg_stat_database for the database (`deadlocks`, `tup_fetched`), once every
    other backend of it has ended (a backend reports its counts when it ends, at the latest).
    """
    admin = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            others = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if not others:
                break
            await asyncio.sleep(0.05)
        await admin.execute("SELECT pg_stat_clear_snapshot()")
        count: int = await admin.fetchval(
            f"SELECT {counter} FROM pg_stat_database WHERE datname = current_database()"
        )
        return count
    finally:
        await admin.close()


def _among_changes(manager: JobManager, job_id: str, n: int, other: str) -> Awaitable[Any]:
    """The `n`th request: every third `other` ("creation", "step"), the rest changes."""
    if other == "creation" and n % 3 == 0:
        return manager.create_job(ALICE)
    if other == "step" and n % 3 == 0:
        return manager.record_step(ALICE, job_id, status="success", step_id=f"s{n}")
    return manager.update_job(ALICE, job_id, metadata={"n": n})


@pytest.mark.parametrize(
    "other", ["", "creation", "step"], ids=["changes", "changes and creations", "changes and steps"]
)
async def test_writers_of_two_replicas_never_deadlock_on_the_jobs_they_share(
    database_url: str, other: str
) -> None:
    # Each writer's batch holds several of the jobs, in any order. A creation or a step
    # among the changes makes a batch of several runs, in one transaction: each run's jobs
    # locked in id order is not enough when a later run of the batch locks more (a step's
    # row locks its job's as a key it refers to).
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer")
    settings = Settings(database_url=database_url, postgres_writers=4, write_batch_max=16)
    managers = [JobManager(open_store(settings), Clock()) for _ in range(2)]
    try:
        ids = [(await managers[0].create_job(ALICE, status="running")).id for _ in range(4)]
        rng = random.Random(7)
        picks = [(rng.randrange(2), rng.choice(ids), n) for n in range(1200)]
        await asyncio.gather(
            *(_among_changes(managers[m], job_id, n, other) for m, job_id, n in picks)
        )
    finally:
        for manager in managers:
            await manager.close()
    # Each deadlock stalls its writers a second.
    assert await _counted(database_url, "deadlocks") == 0


async def test_a_batch_of_creations_takes_its_keys_in_one_order(database_url: str) -> None:
    # A key another writer (a replica) is inserting too is waited for: two batches inserting
    # the same keys in different orders would each wait for a key the other holds, a
    # deadlock that costs both a second. In key order, one waits for the other.
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer")
    settings = Settings(database_url=database_url, postgres_writers=1, write_batch_max=64)
    manager = JobManager(open_store(settings), Clock())
    try:
        keys = [f"k{n:03}" for n in range(200)]
        random.Random(3).shuffle(keys)
        await asyncio.gather(*(manager.create_job(ALICE, idempotency_key=key) for key in keys))
    finally:
        await manager.close()
    connection = await asyncpg.connect(database_url)
    try:  # the rows of one transaction share its xmin; a table's new rows follow their order
        rows = await connection.fetch(
            "SELECT xmin::text AS batch, idempotency_key FROM jobs ORDER BY ctid"
        )
    finally:
        await connection.close()
    batches: dict[str, list[str]] = {}
    for row in rows:
        batches.setdefault(row["batch"], []).append(row["idempotency_key"])
    assert sorted(key for batch in batches.values() for key in batch) == sorted(keys)
    assert max(len(batch) for batch in batches.values()) > 1
    for batch in batches.values():
        assert batch == sorted(batch)


async def test_a_key_another_writer_takes_meanwhile_leaves_the_rest_of_its_batch_together(
    jobs: JobManager, database_url: str
) -> None:
    # The batch reads its keys, another writer (a replica) inserts one of them, and the
    # batch's INSERT waits for it. The key's request gets that writer's job, as it would
    # alone, and the rest of the batch is stored by it: nothing to undo and run again one
    # transaction a request.
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer")
    other, watcher = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    taken = other.transaction()
    await taken.start()
    await other.execute(THEIRS_WITH_K07)
    mine = [replace(await jobs.create_job(ALICE), id=f"job-mine-{n:02}") for n in range(16)]
    creations = [Creation(job, f"k{n:02}") for n, job in enumerate(mine)]
    deltas = await watcher.fetchval("SELECT count(*) FROM job_rollup_deltas")
    try:
        storing = asyncio.ensure_future(
            database_of(jobs).write(lambda c: Creation.run_together(c, creations))
        )
        waiting = 0
        for _ in range(200):  # until the batch's INSERT waits for the other writer's key
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if waiting:
                break
            await asyncio.sleep(0.02)
        await taken.commit()
        assert waiting, "the batch never waited for the key"
        outcomes = await storing
        stored = await watcher.fetch(
            "SELECT id, xmin::text AS batch FROM jobs WHERE id LIKE 'job-mine-%' ORDER BY id"
        )
        deltas = await watcher.fetchval("SELECT count(*) FROM job_rollup_deltas") - deltas
    finally:
        await other.close()  # its transaction, if still open, ends: the batch goes on
        await watcher.close()
    ours = mine[:7] + mine[8:]
    answered = [(job.id, new) for _ok, (job, new) in outcomes]
    assert answered[7] == ("job-theirs", False)
    assert answered[:7] + answered[8:] == [(job.id, True) for job in ours]
    assert [row["id"] for row in stored] == [job.id for job in ours]
    assert len({row["batch"] for row in stored}) == 1
    assert deltas == len(ours)  # the left-out row counts in no figure
    assert [event.job_id for event in await jobs.list_events(ALICE, "job-mine-00")] == [
        "job-mine-00"
    ]


async def test_a_key_taken_and_let_go_meanwhile_goes_to_its_own_request(
    jobs: JobManager, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch reads its keys; another writer (a replica) stores a job with one of them,
    # so the batch's INSERT leaves that row out; then it deletes its job before the batch
    # looks the key up again. Nothing holds the key by then: the batch is undone and run
    # again a request at a time, and every request gets a job of its own, the key's too.
    # The other writer acts between two of the batch's statements, so it runs from a
    # wrapper of the batch's INSERT (on a connection of its own, committing each step).
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer")
    other = await asyncpg.connect(database_url)
    store_rows = changes.insert_jobs
    left_out: list[int] = []

    def replica_meanwhile(
        connection: Connection, rows: Sequence[dict[str, Any]], events: Sequence[JobEvent]
    ) -> dict[str, Any]:
        if left_out or all(row["idempotency_key"] != "k07" for row in rows):
            return store_rows(connection, rows, events)
        await_only(other.execute(THEIRS_WITH_K07))
        stored = store_rows(connection, rows, events)
        left_out.append(len(rows) - len(stored))
        await_only(other.execute("DELETE FROM jobs WHERE id = 'job-theirs'"))
        return stored

    monkeypatch.setattr(creations, "insert_jobs", replica_meanwhile)
    try:
        made = await asyncio.gather(
            *(jobs.create_job(ALICE, idempotency_key=f"k{n:02}") for n in range(16))
        )
    finally:
        await other.close()
    assert left_out == [1], "the other writer's key was not taken between the statements"
    assert len({job.id for job in made}) == 16
    assert "job-theirs" not in {job.id for job in made}
    for n, job in enumerate(made):
        assert await jobs.get_job(ALICE, job.id) == job
        assert (await jobs.create_job(ALICE, idempotency_key=f"k{n:02}")).id == job.id
    assert [event.job_id for event in await jobs.list_events(ALICE, made[7].id)] == [made[7].id]


async def test_a_batch_of_changes_reads_each_of_its_jobs_a_few_times_not_once_per_other_job(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's batches are statements a job")
    settings = Settings(database_url=database_url, postgres_writers=1, write_batch_max=128)
    manager = JobManager(open_store(settings), Clock())
    try:
        ids = [
            job.id for job in await asyncio.gather(*(manager.create_job(ALICE) for _ in range(128)))
        ]
    finally:
        await manager.close()
    admin = await asyncpg.connect(database_url)
    try:  # the plan a prepared statement gets for any array, over a table of many jobs
        await admin.execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET plan_cache_mode ="
            " force_generic_plan', current_database()); END $$"
        )
        await admin.execute(
            "INSERT INTO jobs (id, organization_id, user_id, job_type, status, background,"
            " metadata, created_at, updated_at) SELECT 'other-' || i, 'org-b', 'bob', 'job',"
            " 'created', false, '{}', now(), now() FROM generate_series(1, 50000) AS i;"
            " ANALYZE jobs"
        )
    finally:
        await admin.close()
    before = await _counted(database_url, "tup_fetched")
    manager = JobManager(open_store(settings), Clock())
    try:
        for n in range(8):
            await asyncio.gather(
                *(manager.update_job(ALICE, job_id, metadata={"n": n}) for job_id in ids)
            )
    finally:
        await manager.close()
    fetched = await _counted(database_url, "tup_fetched") - before
    # A batch's lock of its jobs used to run again for each of them: 67 rows a change here.
    assert fetched < 8 * 128 * 8, fetched


@pytest.fixture
async def two(database_url: str) -> AsyncIterator[list[JobManager]]:
    """Two managers of one database, as two replicas: each keeps the jobs it wrote last."""
    settings = Settings(database_url=database_url, postgres_writers=1)
    managers = [JobManager(open_store(settings), Clock()) for _ in range(2)]
    yield managers
    for manager in managers:
        await manager.close()


async def test_a_change_after_another_replicas_is_planned_from_the_job_as_it_is(
    two: list[JobManager],
) -> None:
    mine, theirs = two
    job = await mine.create_job(ALICE, metadata={"a": 1})
    await mine.update_job(ALICE, job.id, status="pending", metadata={"mine": 1})
    await theirs.update_job(ALICE, job.id, status="running", metadata={"theirs": 2})
    done = await mine.update_job(ALICE, job.id, status="completed", metadata={"mine": 3})
    assert (done.status, done.metadata) == ("completed", {"a": 1, "mine": 3, "theirs": 2})
    stored = await theirs.get_job(ALICE, job.id)
    assert (stored.status, stored.metadata) == (done.status, done.metadata)
    events = await theirs.list_events(ALICE, job.id)
    moves = [(e.from_status, e.to_status, e.applied) for e in events]
    assert moves == [
        (None, "created", True),
        ("created", "pending", True),
        ("pending", "running", True),
        ("running", "completed", True),
    ]


async def test_a_refusal_or_no_change_is_of_the_job_as_it_is_not_as_last_written(
    two: list[JobManager],
) -> None:
    """What the replica that wrote a job last would refuse, or leave as it is, may be allowed
    or a change by now: the answer is from the job as it is.
    """
    mine, theirs = two
    job = await mine.create_job(ALICE)
    await mine.update_job(ALICE, job.id, status="pending", metadata={"a": 1})
    await theirs.update_job(ALICE, job.id, status="running", metadata={"b": 2})
    same = await mine.update_job(ALICE, job.id, metadata={"a": 1})  # no change to mine
    assert (same.status, same.metadata) == ("running", {"a": 1, "b": 2})
    with pytest.raises(InvalidTransitionError) as refused:
        await mine.update_job(ALICE, job.id, status="pending")  # it is running now
    assert refused.value.current_status == "running"
    moved = await mine.update_job(ALICE, job.id, status="completed")
    assert moved.status == "completed"


async def test_creations_together_keep_idempotency(jobs: JobManager) -> None:
    earlier = await jobs.create_job(ALICE, idempotency_key="k-0")
    made = await asyncio.gather(
        *(jobs.create_job(ALICE, idempotency_key=f"k-{n % 3}") for n in range(9)),
        *(jobs.create_job(ALICE) for _ in range(5)),
        jobs.create_job(BOB, idempotency_key="k-1"),  # another user's key space
    )
    keyed, plain, bobs = made[:9], made[9:14], made[14]
    assert {job.id for job in keyed[0::3]} == {earlier.id}
    assert len({job.id for job in keyed[1::3]}) == 1
    assert len({job.id for job in keyed[2::3]}) == 1
    assert len({job.id for job in plain}) == 5
    assert bobs.id not in {job.id for job in keyed}
    count = await jobs.count_jobs(Actor("org-a", "root", is_admin=True))
    assert count.total == 1 + 2 + 5 + 1
    for job in plain:
        events = await jobs.list_events(ALICE, job.id)
        assert [(e.from_status, e.to_status, e.reason) for e in events] == [
            (None, "created", "created")
        ]


def in_one_transaction(connection: Connection) -> bool:
    """Whether a command's statements share a transaction (SQLite's writer: always)."""
    if connection.dialect.name != "postgresql":
        return True
    ids = [connection.exec_driver_sql("SELECT txid_current()").scalar() for _ in range(2)]
    return ids[0] == ids[1]


async def test_creations_in_one_statement_fail_alone(jobs: JobManager) -> None:
    # A batch of new jobs without keys is one statement (on PostgreSQL a transaction of its
    # own): one whose id is taken fails it, and each then runs alone.
    store = database_of(jobs)
    taken = await jobs.create_job(ALICE)
    fresh = [replace(taken, id=f"fresh-{n}", metadata={"n": n}) for n in range(6)]
    first = await asyncio.gather(*(store.submit(Creation(job, None)) for job in fresh[:2]))
    assert first == [(job, True) for job in fresh[:2]]
    assert await store.write(in_one_transaction)
    batch = [*fresh[2:4], replace(taken, metadata={"copy": True}), *fresh[4:]]
    made = await asyncio.gather(
        *(store.submit(Creation(job, None)) for job in batch), return_exceptions=True
    )
    assert isinstance(made[2], Exception)
    assert [result for n, result in enumerate(made) if n != 2] == [(job, True) for job in fresh[2:]]
    assert await store.write(in_one_transaction)  # the batches after it are transactions
    assert (await jobs.get_job(ALICE, taken.id)).metadata == taken.metadata
    for job in fresh:
        assert (await jobs.get_job(ALICE, job.id)).metadata == job.metadata
        events = await jobs.list_events(ALICE, job.id)
        assert [(e.from_status, e.to_status) for e in events] == [(None, "created")]
    assert (await jobs.count_jobs(ALICE)).total == 1 + len(fresh)


async def test_a_killed_connection_never_reports_a_rolled_back_success(
    database_url: str, jobs: JobManager
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL backends can be terminated mid-batch")
    ids = [(await jobs.create_job(ALICE)).id for _ in range(200)]
    killer = await asyncpg.connect(database_url)
    stop = asyncio.Event()

    async def kill() -> int:
        killed = 0
        while not stop.is_set():
            killed += await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state <> 'idle'"
            )
            await asyncio.sleep(0.005)
        return killed

    async def move(job_id: str) -> list[str]:
        done = []
        for status in ("pending", "running", "completed"):
            try:
                await jobs.update_job(ALICE, job_id, status=status)
            except Exception:  # an error is an allowed answer here
                continue
            done.append(status)
        return done

    killing = asyncio.create_task(kill())
    reported = await asyncio.gather(*(move(job_id) for job_id in ids))
    stop.set()
    killed = await killing
    await killer.close()
    assert killed > 0, "no batch was interrupted"
    for job_id, statuses in zip(ids, reported, strict=True):
        applied = {e.to_status for e in await jobs.list_events(ALICE, job_id) if e.applied}
        missing = set(statuses) - applied
        assert not missing, f"{job_id}: reported {statuses}, committed {sorted(applied)}"

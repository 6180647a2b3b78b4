"""SQLite connections get WAL, foreign keys and the configured fsync policy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection

from jobpulse import Actor, JobManager, Settings
from jobpulse.storage.migrate import upgrade
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.sqlite.checkpoints import Checkpoint, Checkpointer
from tests.sql import database_of


def pragmas(connection: Connection) -> tuple[str, int, int]:
    def read(name: str) -> object:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

    return str(read("journal_mode")), int(read("foreign_keys")), int(read("synchronous"))  # type: ignore[call-overload]


@pytest.mark.parametrize(("policy", "level"), [("FULL", 2), ("NORMAL", 1)])
async def test_sqlite_pragmas(tmp_path: Path, policy: str, level: int) -> None:
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    await upgrade(url)
    store = open_store(Settings(database_url=url, sqlite_synchronous=policy))
    try:
        assert await store.database.read(pragmas) == ("wal", 1, level)
        assert await store.database.write(pragmas) == ("wal", 1, level)
    finally:
        await store.close()


ALICE = Actor("org-a", "alice")


def autocheckpoint(connection: Connection) -> int:
    return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


async def caught_up(checkpointer: Checkpointer, after: float) -> Checkpoint:
    """The checkpointer's first checkpoint since `after` that left nothing to copy back,
    with nothing committing meanwhile (within 10 s).
    """
    async with asyncio.timeout(10):
        while True:
            last = checkpointer.schedule.last if checkpointer.schedule else None
            if last is not None and last.at > after and last.copied == last.frames:
                return last
            await asyncio.sleep(0.05)


async def test_commits_leave_checkpoints_to_their_own_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    await upgrade(url)
    jobs = JobManager.from_settings(Settings(database_url=url, sqlite_checkpoint_frames=20))
    checkpointer = database_of(jobs).checkpointer
    assert checkpointer is not None
    try:
        assert await database_of(jobs).write(autocheckpoint) == 0  # no commit checkpoints
        logs = []
        for creates in (300, *[30] * 7):
            await asyncio.gather(*(jobs.create_job(ALICE) for _ in range(creates)))
            # A round writes more than the threshold (here 20 frames): the checkpointer
            # copies them back on its own, with nothing committing.
            logs.append((await caught_up(checkpointer, time.monotonic())).frames)
        # Copied back whole, the log starts over: each small round's log holds its own
        # frames alone, fewer than the big first round's (they would add up to more).
        assert all(log < logs[0] for log in logs[1:]), logs
    finally:
        await jobs.close()
    again = JobManager.from_settings(Settings(database_url=url))
    try:
        assert (await again.count_jobs(ALICE)).total == 300 + 7 * 30  # nothing lost on the way
    finally:
        await again.close()

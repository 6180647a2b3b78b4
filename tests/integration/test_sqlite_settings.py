"""SQLite connections get WAL, foreign keys and the configured fsync policy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Connection

from jobpulse import Actor, JobManager, Settings
from jobpulse.storage import engine
from jobpulse.storage.engine import CHECKPOINT_S, Database
from jobpulse.storage.migrate import upgrade


def pragmas(connection: Connection) -> tuple[str, int, int]:
    def read(name: str) -> object:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

    return str(read("journal_mode")), int(read("foreign_keys")), int(read("synchronous"))  # type: ignore[call-overload]


@pytest.mark.parametrize(("policy", "level"), [("FULL", 2), ("NORMAL", 1)])
async def test_sqlite_pragmas(tmp_path: Path, policy: str, level: int) -> None:
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    await upgrade(url)
    database = Database(Settings(database_url=url, sqlite_synchronous=policy))
    try:
        assert await database.read(pragmas) == ("wal", 1, level)
        assert await database.write(pragmas) == ("wal", 1, level)
    finally:
        await database.close()


ALICE = Actor("org-a", "alice")


def autocheckpoint(connection: Connection) -> int:
    return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def log_generation(wal: Path) -> int:
    """The write-ahead log's checkpoint sequence (header bytes 12-16, big-endian): SQLite
    bumps it each time the log starts over from its first frame (sqlite.org/fileformat2.html).
    """
    return int.from_bytes(wal.read_bytes()[12:16], "big")


async def caught_up(shm: Path) -> int:
    """Frames left in the log once the checkpointer has had its turn (up to 10 s)."""
    async with asyncio.timeout(10):
        while True:
            pending = engine.pending_frames(str(shm))
            if pending is not None and pending < engine.CHECKPOINT_FRAMES:
                return pending
            await asyncio.sleep(CHECKPOINT_S)


async def test_commits_leave_checkpoints_to_their_own_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "CHECKPOINT_FRAMES", 100)
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    await upgrade(url)
    jobs = JobManager.from_settings(Settings(database_url=url))
    wal, shm = tmp_path / "jobpulse.db-wal", tmp_path / "jobpulse.db-shm"
    try:
        assert await jobs.database.write(autocheckpoint) == 0  # no commit checkpoints
        generations = []
        for _round in range(8):
            await asyncio.gather(*(jobs.create_job(ALICE) for _ in range(300)))
            # A round writes more than CHECKPOINT_FRAMES (here 100): the checkpointer copies
            # them back on its own, with nothing committing...
            assert await caught_up(shm) < 100
            generations.append(log_generation(wal))
        # ...so the log starts over instead of growing with every round: at least every
        # other round (a round whose last frames stay under the threshold carries them over).
        assert generations[-1] - generations[0] >= len(generations) // 2, generations
    finally:
        await jobs.close()
    again = JobManager.from_settings(Settings(database_url=url))
    try:
        assert (await again.count_jobs(ALICE)).total == 8 * 300  # nothing lost on the way
    finally:
        await again.close()

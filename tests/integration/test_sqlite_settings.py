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


async def test_commits_leave_checkpoints_to_their_own_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "CHECKPOINT_FRAMES", 200)
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    await upgrade(url)
    jobs = JobManager.from_settings(Settings(database_url=url))
    wal = tmp_path / "jobpulse.db-wal"
    try:
        assert await jobs.database.write(autocheckpoint) == 0  # no commit checkpoints
        sizes = []
        for _round in range(8):
            await asyncio.gather(*(jobs.create_job(ALICE) for _ in range(300)))
            sizes.append(wal.stat().st_size)
            await asyncio.sleep(4 * CHECKPOINT_S)  # the checkpointer catches up
        # Copied back once it holds CHECKPOINT_FRAMES (here about a round's), the log starts
        # over instead of growing with every round (eight rounds: eight times the first).
        assert max(sizes) < 4 * sizes[0], sizes
    finally:
        await jobs.close()
    again = JobManager.from_settings(Settings(database_url=url))
    try:
        assert (await again.count_jobs(ALICE)).total == 8 * 300  # nothing lost on the way
    finally:
        await again.close()

"""SQLite connections get WAL, foreign keys and the configured fsync policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection

from jobpulse import Settings
from jobpulse.storage.engine import Database
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

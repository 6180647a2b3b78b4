"""The SQLite backend of `sqlite:///path` URLs: one writer thread, reader threads, a
checkpointer, and one `serve` per file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL

from jobpulse.config import Settings
from jobpulse.errors import ValidationError
from jobpulse.storage.dialects import Dialect
from jobpulse.storage.engine import close_in_turn
from jobpulse.storage.sqlite import serving
from jobpulse.storage.sqlite.checkpoints import Checkpointer
from jobpulse.storage.sqlite.connections import ThreadReader, ThreadWriter, sqlite_engine
from jobpulse.storage.sqlite.scans import NICENESS

T = TypeVar("T")


class SqliteConnections:
    """A SQLite file's connections: reader threads for short reads and for long ones (at a
    lower CPU priority, each statement under a deadline), the writer thread, whose commits
    leave checkpoints to the checkpointer's thread.
    """

    #: A paced read sleeps in its reader thread, and what it spends is that thread's CPU
    #: time (a thread at a lower priority may wait long for a core, or for the GIL).
    pause = staticmethod(time.sleep)
    spent = staticmethod(time.thread_time)

    def __init__(self, settings: Settings) -> None:
        url, synchronous = settings.database_url, settings.sqlite_synchronous
        scans, timeout_s = settings.read_concurrency, settings.read_timeout_s
        reads = sqlite_engine(url, None, settings.pool_size, synchronous)
        self.reader = ThreadReader(reads, settings.pool_size)
        scanning = sqlite_engine(url, None, scans, synchronous)
        self.scanner = ThreadReader(scanning, scans, timeout_s, NICENESS)
        writes = sqlite_engine(
            url, "BEGIN IMMEDIATE", pool_size=1, synchronous=synchronous, autocheckpoint=False
        )
        self.writer = ThreadWriter(writes, settings.write_batch_max)
        checkpoints = sqlite_engine(url, None, pool_size=1, synchronous=synchronous)
        self.checkpointer = Checkpointer(checkpoints, settings.sqlite_checkpoint_frames)

    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Nothing to hear: the one process serving the file hears of its own changes."""

    async def close(self) -> None:
        await close_in_turn(
            self.writer.close, self.reader.close, self.scanner.close, self.checkpointer.close
        )


class SqliteBackend:
    """The backend of `sqlite:///path` URLs (see storage/engine.py's `Backend`)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def serves(self, parsed: URL) -> bool:
        return parsed.get_backend_name() == "sqlite"

    def url(self, parsed: URL) -> URL:
        if parsed.database in (None, "", ":memory:"):
            raise ValidationError("SQLite needs a file: use sqlite:///path/to/jobpulse.db")
        return parsed.set(drivername="sqlite")

    def connect(self, settings: Settings) -> SqliteConnections:
        return SqliteConnections(settings)

    def served(self, url: URL, processes: int) -> AbstractContextManager[None]:
        """One `serve` per file, in one process (see storage/sqlite/serving.py)."""
        assert url.database is not None  # `url` refuses a URL without one
        if processes > 1:
            raise ValidationError(
                f"--workers {processes} needs PostgreSQL: a SQLite file is served by one "
                "process (serve it with --workers 1, or run workers on postgresql://…)"
            )
        return serving.claimed(url.database)

    async def run_in_transaction(self, url: str, command: Callable[[Connection], T]) -> T:
        engine = sqlite_engine(url, "BEGIN IMMEDIATE", pool_size=1)
        try:
            return await asyncio.to_thread(_in_transaction, engine, command)
        finally:
            engine.dispose()


def _in_transaction(engine: Engine, command: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return command(connection)

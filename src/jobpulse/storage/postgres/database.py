"""The PostgreSQL backend of `postgresql://` URLs: writer tasks, pooled readers, long reads
on an event loop of their own, and LISTEN for what other replicas commit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from jobpulse.config import Settings
from jobpulse.storage.dialects import Dialect
from jobpulse.storage.engine import close_in_turn
from jobpulse.storage.postgres import listening
from jobpulse.storage.postgres.connections import TaskReader, TaskWriter, pause, postgres_engine
from jobpulse.storage.postgres.scans import LoopReader
from jobpulse.storage.urls import database_url

T = TypeVar("T")


class PostgresConnections:
    """A PostgreSQL database's connections: one pool for the writer tasks and short reads,
    another, on an event loop of its own and under a statement timeout, for long reads.
    """

    #: Nothing to checkpoint.
    checkpointer = None
    #: A paced read pauses its reader's event loop, and what it spends is the time it took
    #: (the work is the server's).
    pause = staticmethod(pause)
    spent = staticmethod(time.monotonic)

    def __init__(self, settings: Settings) -> None:
        self._url = settings.database_url
        scans, timeout_s = settings.read_concurrency, settings.read_timeout_s
        self._engine = postgres_engine(self._url, settings.pool_size, settings.database_timeout_s)
        self.reader = TaskReader(self._engine)
        timeout_ms = f"{max(1, round(timeout_s * 1000))}ms"  # 0 would mean none
        timed = postgres_engine(
            self._url, scans, settings.database_timeout_s, statement_timeout=timeout_ms
        )
        self.scanner = LoopReader(TaskReader(timed, timeout_s), timed)
        self.writer = TaskWriter(self._engine, settings.postgres_writers, settings.write_batch_max)

    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """LISTEN on `channel` until cancelled (see storage/postgres/listening.py)."""
        plain = database_url(self._url).set(drivername="postgresql")
        await listening.listen(plain.render_as_string(hide_password=False), channel, callback)

    async def close(self) -> None:
        await close_in_turn(
            self.writer.close, self.reader.close, self.scanner.close, self._engine.dispose
        )


class PostgresBackend:
    """The backend of `postgresql://` URLs (see storage/engine.py's `Backend`)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def serves(self, parsed: URL) -> bool:
        return parsed.get_backend_name() == "postgresql"

    def url(self, parsed: URL) -> URL:
        return parsed.set(drivername="postgresql+asyncpg")

    def connect(self, settings: Settings) -> PostgresConnections:
        return PostgresConnections(settings)

    def served(self, url: URL, processes: int) -> AbstractContextManager[None]:
        """Nothing to hold: any number of replicas and workers serve one database."""
        return contextlib.nullcontext()

    async def run_in_transaction(self, url: str, command: Callable[[Connection], T]) -> T:
        engine = postgres_engine(url, pool_size=1)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(command)
        finally:
            await engine.dispose()

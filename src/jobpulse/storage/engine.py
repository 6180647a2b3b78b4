"""The one database, chosen by URL: reads on a pool, writes through the group-committing
writer of its driver (storage/sqlite/, storage/postgres/).

Storage code is written once, as synchronous Core functions of a `Connection`, and each
call crosses to the database once: on SQLite it runs whole in a thread (a pool of reader
threads, one writer thread), on PostgreSQL under `run_sync` on an asyncpg connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine

from jobpulse.config import Settings
from jobpulse.storage import notify
from jobpulse.storage.failures import translated_errors
from jobpulse.storage.group_commit import Traffic, Writer
from jobpulse.storage.postgres.connections import TaskReader, TaskWriter, pause, postgres_engine
from jobpulse.storage.scans import NICENESS, LoopReader, Pacer
from jobpulse.storage.sqlite import serving
from jobpulse.storage.sqlite.checkpoints import Checkpointer
from jobpulse.storage.sqlite.connections import ThreadReader, ThreadWriter, sqlite_engine
from jobpulse.storage.urls import database_url

T = TypeVar("T")
P = ParamSpec("P")


@contextlib.contextmanager
def served(url: str) -> Iterator[None]:
    """Held while `serve` serves the database at `url`: a SQLite file by one process at a
    time (AlreadyServedError for a second), PostgreSQL by any number of replicas.
    """
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database is None:
        yield
        return
    with serving.claimed(parsed.database):
        yield


async def run_in_transaction(
    url: str, command: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run the sync `command(connection, ...)` once, in a transaction of its own."""

    def run(connection: Connection) -> T:
        return command(connection, *args, **kwargs)

    with translated_errors():
        if database_url(url).get_backend_name() == "sqlite":
            engine = sqlite_engine(url, "BEGIN IMMEDIATE", pool_size=1)
            try:
                return await asyncio.to_thread(_in_transaction, engine, run)
            finally:
                engine.dispose()
        async_engine = postgres_engine(url, pool_size=1)
        try:
            async with async_engine.begin() as connection:
                return await connection.run_sync(run)
        finally:
            await async_engine.dispose()


def _in_transaction(engine: Engine, command: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return command(connection)


class Database:
    """The one database: reads on a pool, writes through the group-committing writer."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.dialect = database_url(self.url).get_backend_name()
        #: Other processes hear of what this one commits (PostgreSQL's NOTIFY).
        self.announces = self.dialect != "sqlite"
        self._reader: ThreadReader | TaskReader
        self._writer: Writer
        #: SQLite's checkpoints (None on PostgreSQL).
        self.checkpointer: Checkpointer | None = None
        self._scanner: ThreadReader | LoopReader
        scans, timeout_s = settings.read_concurrency, settings.read_timeout_s
        self._read_timeout_s, self._read_share = timeout_s, settings.read_share
        #: How a paced read sleeps where it runs (its thread on SQLite, its event loop on
        #: PostgreSQL), and how what it spends is measured (see scans.Pacer).
        self._pause: Callable[[float], None] = time.sleep
        self._spent: Callable[[], float] = time.thread_time
        if self.dialect == "sqlite":
            reads = sqlite_engine(self.url, None, settings.pool_size, settings.sqlite_synchronous)
            self._reader = ThreadReader(reads, settings.pool_size)
            scanning = sqlite_engine(self.url, None, scans, settings.sqlite_synchronous)
            self._scanner = ThreadReader(scanning, scans, timeout_s, NICENESS)
            writes = sqlite_engine(
                self.url,
                "BEGIN IMMEDIATE",
                pool_size=1,
                synchronous=settings.sqlite_synchronous,
                autocheckpoint=False,
            )
            self._writer = ThreadWriter(writes, settings.write_batch_max)
            checkpoints = sqlite_engine(
                self.url, None, pool_size=1, synchronous=settings.sqlite_synchronous
            )
            self.checkpointer = Checkpointer(checkpoints, settings.sqlite_checkpoint_frames)
        else:
            self._engine = postgres_engine(
                self.url, settings.pool_size, settings.database_timeout_s
            )
            self._reader = TaskReader(self._engine)
            timeout_ms = f"{max(1, round(timeout_s * 1000))}ms"  # 0 would mean none
            timed = postgres_engine(
                self.url, scans, settings.database_timeout_s, statement_timeout=timeout_ms
            )
            self._scanner = LoopReader(TaskReader(timed, timeout_s), timed)
            self._pause, self._spent = pause, time.monotonic
            self._writer = TaskWriter(
                self._engine, settings.postgres_writers, settings.write_batch_max
            )

    async def read(
        self, query: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run the sync `query(connection, *args, **kwargs)` on a pooled connection."""
        return await self._reader.run(lambda connection: query(connection, *args, **kwargs))

    async def scan(
        self, query: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `read`, for a read that may be long (a listing, a count, figures): on
        `read_concurrency` connections of its own, stopped past `read_timeout_s`
        (ReadTimeoutError); see storage/scans.py.
        """
        return await self._scanner.run(lambda connection: query(connection, *args, **kwargs))

    async def paced_scan(
        self,
        query: Callable[Concatenate[Connection, Pacer, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like `scan`, for a read in slices that makes way for changes between them: while
        the writer is busy it takes `read_share` of the time, see storage/scans.py's Pacer.
        """

        def paced(connection: Connection) -> T:
            traffic = self._writer.traffic
            pacer = Pacer(
                traffic.recent, self._pause, self._read_share, self._read_timeout_s, self._spent
            )
            return query(connection, pacer, *args, **kwargs)

        return await self._scanner.run(paced)

    async def write(
        self, command: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run the sync `command(connection, *args, **kwargs)` in the writer's next committed
        batch.
        """
        result: T = await self._writer.submit(
            lambda connection: command(connection, *args, **kwargs)
        )
        return result

    async def submit(self, command: Callable[[Connection], T]) -> T:
        """Run `command(connection)` in the writer's next committed batch, as it is: a
        `Together` command may then run with those of its kind beside it.
        """
        result: T = await self._writer.submit(command)
        return result

    @property
    def traffic(self) -> Traffic:
        """The writer's load, for background work to make way for changes."""
        return self._writer.traffic

    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Call `callback` for every notification on `channel` from any process (see
        `notify.listen`), until cancelled; on SQLite, which has none, return at once.
        """
        if self.dialect != "sqlite":
            plain = database_url(self.url).set(drivername="postgresql")
            await notify.listen(plain.render_as_string(hide_password=False), channel, callback)

    async def write_background(
        self, command: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `write`, for work that can wait (a prune): it starts only when no change is
        queued, and should make way (return early) when `traffic` says one is; on SQLite the
        changes that came in meanwhile then commit in its transaction.
        """
        result: T = await self._writer.submit(
            lambda connection: command(connection, *args, **kwargs), background=True
        )
        return result

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        await self._writer.close()
        await self._reader.close()
        await self._scanner.close()
        if self.checkpointer is not None:
            await self.checkpointer.close()
        if self.dialect != "sqlite":
            await self._engine.dispose()

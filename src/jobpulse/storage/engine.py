"""Connections to the one database, chosen by URL, and the group-committing writer.

Storage code is written once, as synchronous Core functions of a `Connection`. Reads run
them on the async engine (`run_sync`); writes go to a writer that commits whole batches of
requests in one transaction: a thread owning the SQLite connection, or a few tasks on
PostgreSQL connections. A batch that hits a database error is rolled back and its requests
are retried one transaction each, so one bad request never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from jobpulse.config import Settings
from jobpulse.errors import JobPulseError, UnavailableError, ValidationError

T = TypeVar("T")
Command = Callable[[Connection], Any]

_SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000")


def database_url(url: str, *, driver: str = "async") -> URL:
    """The SQLAlchemy URL for a plain `sqlite:///…` or `postgresql://…` setting."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValidationError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValidationError("SQLite needs a file: use sqlite:///path/to/jobpulse.db")
        return parsed.set(drivername="sqlite+aiosqlite" if driver == "async" else "sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValidationError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _configure_sqlite(engine: Engine, begin: str) -> None:
    """WAL and foreign keys on every connection; transactions begun explicitly."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)


def create_async(url: str, pool_size: int = 10) -> AsyncEngine:
    """The async engine for `url`, configured for its dialect."""
    target = database_url(url)
    if target.get_backend_name() == "sqlite":
        engine = create_async_engine(target, pool_size=pool_size)
        _configure_sqlite(engine.sync_engine, "BEGIN")
        return engine
    return create_async_engine(target, pool_size=pool_size, max_overflow=pool_size)


def translate_error(exc: Exception) -> Exception:
    """UnavailableError for a database that cannot be reached; anything else as it is."""
    if isinstance(exc, OperationalError | OSError):
        return UnavailableError("the database cannot be reached")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return UnavailableError("the database connection was lost")
    return exc


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Raise translate_error's exception in place of a database driver's."""
    try:
        yield
    except Exception as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc


@dataclass(slots=True)
class _Request:
    command: Command
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _resolve(pairs: list[tuple[_Request, bool, Any]]) -> None:
    for request, ok, value in pairs:
        if request.future.done():  # the caller gave up waiting
            continue
        if ok:
            request.future.set_result(value)
        else:
            request.future.set_exception(value)


def run_batch(connection: Connection, commands: Sequence[Command]) -> list[tuple[bool, Any]]:
    """Run `commands` in one transaction; fall back to one transaction each on an error.

    A JobPulseError from a command goes back to its caller without undoing the batch:
    commands raise those before they write anything.
    """
    try:
        outcomes: list[tuple[bool, Any]] = []
        with connection.begin():
            for command in commands:
                try:
                    outcomes.append((True, command(connection)))
                except JobPulseError as exc:
                    outcomes.append((False, exc))
        return outcomes
    except Exception as exc:
        if len(commands) == 1:
            return [(False, translate_error(exc))]
    return [run_batch(connection, [command])[0] for command in commands]


class Writer(Protocol):
    """Runs write commands, committing them in batches."""

    async def submit(self, command: Command) -> Any: ...

    async def close(self) -> None: ...


class ThreadWriter:
    """The single SQLite writer: a thread that commits queued commands in batches."""

    def __init__(self, engine: Engine, batch_max: int) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="jobpulse-writer", daemon=True)
        self._thread.start()

    async def submit(self, command: Command) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Request(command, future, loop))
        return await future

    async def close(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._engine.dispose()

    def _next_batch(self) -> list[_Request] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self._batch_max:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                self._queue.put(None)  # finish this batch, then stop
                break
            batch.append(request)
        return batch

    def _run(self) -> None:
        connection: Connection | None = None
        while (batch := self._next_batch()) is not None:
            try:
                connection = connection or self._engine.connect()
                outcomes = run_batch(connection, [r.command for r in batch])
            except Exception as exc:
                outcomes = [(False, translate_error(exc))] * len(batch)
            self._deliver(batch, outcomes)
        if connection is not None:
            connection.close()

    @staticmethod
    def _deliver(batch: list[_Request], outcomes: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, bool, Any]]] = {}
        for request, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(request.loop, []).append((request, ok, value))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_resolve, pairs)


class TaskWriter:
    """PostgreSQL writers: a few tasks, each committing queued commands in batches."""

    def __init__(self, engine: AsyncEngine, workers: int, batch_max: int) -> None:
        self._engine = engine
        self._workers = workers
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Request] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(self, command: Command) -> Any:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [
                asyncio.create_task(self._work(self._queue), name=f"jobpulse-writer-{n}")
                for n in range(self._workers)
            ]
        future = loop.create_future()
        self._queue.put_nowait(_Request(command, future, loop))
        return await future

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self, requests: asyncio.Queue[_Request]) -> None:
        while True:
            batch = [await requests.get()]
            while len(batch) < self._batch_max and not requests.empty():
                batch.append(requests.get_nowait())
            try:
                async with self._engine.connect() as connection:
                    outcomes = await connection.run_sync(run_batch, [r.command for r in batch])
            except Exception as exc:
                outcomes = [(False, translate_error(exc))] * len(batch)
            _resolve([(r, ok, value) for r, (ok, value) in zip(batch, outcomes, strict=True)])
            for _ in batch:
                requests.task_done()


class Database:
    """The one database: reads on a pool, writes through the group-committing writer."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.engine = create_async(self.url, settings.pool_size)
        self.dialect = self.engine.dialect.name
        self.writer: Writer
        if self.dialect == "sqlite":
            sync_engine = create_engine(database_url(self.url, driver="sync"))
            _configure_sqlite(sync_engine, "BEGIN IMMEDIATE")
            self.writer = ThreadWriter(sync_engine, settings.write_batch_max)
        else:
            self.writer = TaskWriter(
                self.engine, settings.postgres_writers, settings.write_batch_max
            )

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run the sync `query(connection, *args)` on a pooled connection."""
        with translated_errors():
            async with self.engine.connect() as connection:
                return await connection.run_sync(query, *args)

    async def write(self, command: Callable[..., T], *args: Any) -> T:
        """Run the sync `command(connection, *args)` in the writer's next committed batch."""
        result: T = await self.writer.submit(lambda connection: command(connection, *args))
        return result

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        await self.writer.close()
        await self.engine.dispose()

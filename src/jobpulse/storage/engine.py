"""Connections to the one database, chosen by URL, and the group-committing writer.

Storage code is written once, as synchronous Core functions of a `Connection`, and each
call crosses to the database once: on SQLite it runs whole in a thread (a pool of reader
threads, one writer thread), on PostgreSQL under `run_sync` on an asyncpg connection. Writes
go to a writer that commits whole batches of requests in one transaction (group commit); a
batch that hits a database error is rolled back and its requests are retried one
transaction each, so one bad request never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import asyncpg
import orjson
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from jobpulse import documents
from jobpulse.config import Settings
from jobpulse.errors import JobPulseError, UnavailableError, ValidationError
from jobpulse.storage import notify
from jobpulse.storage.scans import NICENESS, LoopReader, lower_priority, timed_out, within
from jobpulse.storage.sqlite import serving
from jobpulse.storage.sqlite.checkpoints import Checkpointer

logger = logging.getLogger("jobpulse.storage")
T = TypeVar("T")
P = ParamSpec("P")
Command = Callable[[Connection], Any]

_SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000")


def database_url(url: str) -> URL:
    """The SQLAlchemy URL for a plain `sqlite:///…` or `postgresql://…` setting."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValidationError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValidationError("SQLite needs a file: use sqlite:///path/to/jobpulse.db")
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValidationError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


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


def _load_json(text: str | bytes) -> Any:
    """A stored JSON value: orjson's fast path, and a lenient reader for the rows orjson
    refuses (NaN written before the JSON policy). A value neither can read is None, so that
    one bad row fails only what needs it, never a listing or a claim of many.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return documents.loads(text)
    except (ValueError, RecursionError):
        logger.warning("a stored JSON value cannot be read; it reads as null")
        return None


def _sqlite_engine(
    url: str,
    begin: str | None,
    pool_size: int,
    synchronous: str = "FULL",
    autocheckpoint: bool = True,
) -> Engine:
    """A pysqlite engine with WAL and foreign keys on every connection.

    With `begin`, transactions start with that statement (BEGIN IMMEDIATE for the writer,
    so that it takes the write lock up front); without, every statement commits alone.
    Without `autocheckpoint`, its commits leave checkpoints to a `Checkpointer`.
    """
    pragmas: tuple[str, ...] = (*_SQLITE_PRAGMAS, f"synchronous={synchronous}")
    if not autocheckpoint:
        pragmas += ("wal_autocheckpoint=0",)
    engine = create_engine(database_url(url), pool_size=pool_size, json_deserializer=_load_json)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

    return engine


def _postgres_engine(
    url: str, pool_size: int, connect_timeout_s: float = 10.0, **server_settings: str
) -> AsyncEngine:
    """An asyncpg engine; a connection not made within `connect_timeout_s`, or a pooled one
    not free within it, is an outage (503) rather than a request that hangs.
    """
    return create_async_engine(
        database_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=connect_timeout_s,
        connect_args={"timeout": connect_timeout_s, "server_settings": server_settings},
        json_deserializer=_load_json,
    )


async def run_in_transaction(
    url: str, command: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run the sync `command(connection, ...)` once, in a transaction of its own."""

    def run(connection: Connection) -> T:
        return command(connection, *args, **kwargs)

    with translated_errors():
        if database_url(url).get_backend_name() == "sqlite":
            engine = _sqlite_engine(url, "BEGIN IMMEDIATE", pool_size=1)
            try:
                return await asyncio.to_thread(_in_transaction, engine, run)
            finally:
                engine.dispose()
        async_engine = _postgres_engine(url, pool_size=1)
        try:
            async with async_engine.begin() as connection:
                return await connection.run_sync(run)
        finally:
            await async_engine.dispose()


def _in_transaction(engine: Engine, command: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return command(connection)


#: SQLSTATE classes of a database that cannot serve now: connection exception, insufficient
#: resources (too many connections), operator intervention (shutting down, starting up, a
#: statement cancelled), system error.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "58")
#: Errors of a database that cannot be reached: refused, reset, timed out, the pool waited
#: too long for a connection, the driver's connection closed under it (or, terminated by the
#: server while idle, left still reading the notice: asyncpg's InternalClientError).
_UNREACHABLE = (
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
    PoolTimeout,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def translate_error(exc: Exception) -> Exception:
    """UnavailableError for a database that cannot be reached or cannot serve now (refused,
    starting up, shutting down, too many connections, timed out); ValidationError for a value
    it cannot store; anything else as it is.
    """
    sqlstate = _sqlstate(exc)
    if isinstance(exc, DataError | UnicodeEncodeError) or sqlstate.startswith("22"):
        return ValidationError("a value cannot be stored: text must be UTF-8 without NUL")
    if isinstance(exc, _UNREACHABLE) or sqlstate[:2] in _UNAVAILABLE_SQLSTATES:
        return UnavailableError("the database cannot be reached")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return UnavailableError("the database connection was lost")
    return exc


def _sqlstate(exc: Exception) -> str:
    """The PostgreSQL SQLSTATE of an error, raw from asyncpg or wrapped by SQLAlchemy."""
    for error in (exc, getattr(exc, "orig", None)):
        if isinstance(state := getattr(error, "sqlstate", None), str):
            return state
    return ""


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


def _runs(connection: Connection, commands: Sequence[Command]) -> list[list[Command]]:
    """`commands` in runs, in order: neighbours of one kind that can run together, or one
    alone. A command that can has a `run_together(connection, commands)` giving each one's
    outcome, and `together_on`, the databases where that pays (see storage/together.py).
    """
    dialect = connection.dialect.name
    runs: list[list[Command]] = []
    for command in commands:
        kind = None
        if dialect in getattr(command, "together_on", ()):
            kind = getattr(command, "run_together", None)
        last = runs[-1] if runs else None
        if kind is not None and last and getattr(last[0], "run_together", None) is kind:
            last.append(command)
        else:
            runs.append([command])
    return runs


def run_batch(
    connection: Connection,
    commands: Sequence[Command],
    then: Callable[[], Sequence[Command]] | None = None,
) -> list[tuple[bool, Any]]:
    """Run `commands` in one transaction, and after them the commands `then()` gives (changes
    that came in meanwhile); fall back to one transaction each on an error. The outcomes are
    those of `commands`, then of `then()`'s.

    A JobPulseError from a command goes back to its caller without undoing the batch:
    commands raise those before they write anything.
    """
    ran = list(commands)
    try:
        outcomes: list[tuple[bool, Any]] = []
        with connection.begin():
            outcomes += _run_all(connection, commands)
            if then is not None:
                joined = then()
                ran += joined
                outcomes += _run_all(connection, joined)
        return outcomes
    except Exception as exc:
        # Whatever the failure left on the connection (an open cursor, a savepoint, a broken
        # socket) goes with it: the next statement reconnects and starts clean.
        connection.invalidate()
        if len(ran) == 1:
            return [(False, translate_error(exc))]
    return [run_batch(connection, [command])[0] for command in ran]


def _run_all(connection: Connection, commands: Sequence[Command]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    for run in _runs(connection, commands):
        if len(run) > 1:
            run_together: Any = getattr(run[0], "run_together")  # noqa: B009
            outcomes.extend(run_together(connection, run))
            continue
        try:
            outcomes.append((True, run[0](connection)))
        except JobPulseError as exc:
            outcomes.append((False, exc))
    return outcomes


#: Seconds after a change was queued during which background work counts the writer as busy.
BUSY_S = 0.5


class Traffic:
    """The writer's load, for background work that makes way for changes (see
    storage/retention.py): changes queued, counted by the event loop that queues them, and
    changes taken, counted by the writer that runs them; each count has one writer.
    """

    def __init__(self) -> None:
        self._queued = 0
        self._taken = 0
        self._last = -BUSY_S

    def queue(self) -> None:
        """A change was queued."""
        self._queued += 1
        self._last = time.monotonic()

    def take(self, number: int) -> None:
        """The writer took `number` changes off its queue."""
        self._taken += number

    def waiting(self) -> bool:
        """A change is queued now."""
        return self._queued > self._taken

    def recent(self) -> bool:
        """A change was queued within the last `BUSY_S` seconds."""
        return time.monotonic() - self._last < BUSY_S


class Writer(Protocol):
    """Runs write commands, committing them in batches."""

    traffic: Traffic

    async def submit(self, command: Command, background: bool = False) -> Any: ...

    async def close(self) -> None: ...


#: Put on the SQLite writer's queue to wake it for a request of the background lane.
_WAKE = object()


class ThreadWriter:
    """The single SQLite writer: a thread that commits queued commands in batches.

    Background requests (a prune) wait in a lane of their own and start one at a time, only
    when no change is queued. Changes queued while one runs join its transaction once it
    returns (it returns early for them, see `Traffic`): they wait for its current step and
    their own commit, never for a commit of the background work's.
    """

    def __init__(self, engine: Engine, batch_max: int) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[_Request | object | None] = queue.SimpleQueue()
        self._background: collections.deque[_Request] = collections.deque()
        self.traffic = Traffic()
        self._thread = threading.Thread(target=self._run, name="jobpulse-writer", daemon=True)
        self._thread.start()

    async def submit(self, command: Command, background: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if background:
            self._background.append(_Request(command, future, loop))
            self._queue.put(_WAKE)
        else:
            self.traffic.queue()
            self._queue.put(_Request(command, future, loop))
        return await future

    async def close(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._engine.dispose()

    def _next_batch(self) -> tuple[list[_Request], bool] | None:
        """The next batch of changes (False), or one background request alone (True): only
        when no change is queued. None once the writer is closing.
        """
        first: _Request | object | None = _WAKE
        while first is _WAKE:
            try:  # wait for a change only while the background lane is empty
                first = self._queue.get(block=not self._background)
            except queue.Empty:
                return [self._background.popleft()], True
        if first is None:
            return None
        assert isinstance(first, _Request)
        self.traffic.take(1)
        return [first, *self._take_queued(self._batch_max - 1)], False

    def _join(self, joined: list[_Request]) -> list[Command]:
        """Take the changes queued now into `joined`; their commands."""
        joined += self._take_queued(self._batch_max)
        return [request.command for request in joined]

    def _take_queued(self, most: int) -> list[_Request]:
        """Up to `most` changes already queued, without waiting."""
        taken: list[_Request] = []
        while len(taken) < most:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                self._queue.put(None)  # finish this batch, then stop
                break
            if isinstance(request, _Request):
                taken.append(request)
        self.traffic.take(len(taken))
        return taken

    def _run(self) -> None:
        connection: Connection | None = None
        while (next_batch := self._next_batch()) is not None:
            batch, background = next_batch
            # Changes that come in while background work runs join its transaction: they
            # wait for its current step, not for a commit of its own.
            joined: list[_Request] = []
            then = functools.partial(self._join, joined) if background else None
            try:
                connection = connection or self._engine.connect()
                outcomes = run_batch(connection, [r.command for r in batch], then)
            except Exception as exc:
                outcomes = [(False, translate_error(exc))] * (len(batch) + len(joined))
            self._deliver(batch + joined, outcomes)
        if connection is not None:
            connection.close()
        closing = UnavailableError("the database is closing")
        while self._background:  # left when the writer closed: their callers are told
            self._deliver([self._background.popleft()], [(False, closing)])

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
        self.traffic = Traffic()
        self._workers = workers
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Request] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(self, command: Command, background: bool = False) -> Any:
        if background:  # beside the writers, in a transaction of its own
            async with self._engine.connect() as connection:
                [(ok, value)] = await connection.run_sync(run_batch, [command])
            if not ok:
                raise value
            return value
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [
                asyncio.create_task(self._work(self._queue), name=f"jobpulse-writer-{n}")
                for n in range(self._workers)
            ]
        future = loop.create_future()
        self.traffic.queue()
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
            self.traffic.take(len(batch))
            try:
                async with self._engine.connect() as connection:
                    outcomes = await connection.run_sync(run_batch, [r.command for r in batch])
            except Exception as exc:
                outcomes = [(False, translate_error(exc))] * len(batch)
            _resolve([(r, ok, value) for r, (ok, value) in zip(batch, outcomes, strict=True)])
            for _ in batch:
                requests.task_done()


class ThreadReader:
    """SQLite reads: each query runs whole in one of a pool of threads; with `timeout_s`,
    interrupted past it, and with `niceness`, at a lower CPU priority (see storage/scans.py).
    """

    def __init__(
        self, engine: Engine, threads: int, timeout_s: float | None = None, niceness: int = 0
    ) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._threads = ThreadPoolExecutor(
            threads,
            thread_name_prefix="jobpulse-reader",
            initializer=functools.partial(lower_priority, niceness) if niceness else None,
        )

    async def run(self, query: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run, query)

    def _run(self, query: Callable[[Connection], T]) -> T:
        with translated_errors(), self._engine.connect() as connection:
            if self._timeout_s is None:
                return query(connection)
            return within(connection, query, self._timeout_s)

    async def close(self) -> None:
        self._threads.shutdown(wait=True)
        self._engine.dispose()


class _DroppedError(Exception):
    """A query failed on a connection the database no longer serves (`error`)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


#: PostgreSQL's SQLSTATE of a statement cancelled, as statement_timeout does.
_QUERY_CANCELED = "57014"


class TaskReader:
    """PostgreSQL reads: each query under run_sync on a pooled autocommit connection; with
    `timeout_s`, the engine's statement_timeout, a statement it cancels is a ReadTimeoutError.
    """

    def __init__(self, engine: AsyncEngine, timeout_s: float | None = None) -> None:
        # Reads need no transaction: autocommit spares the BEGIN and ROLLBACK round trips.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._timeout_s = timeout_s

    async def run(self, query: Callable[[Connection], T]) -> T:
        with translated_errors():
            try:
                return await self._run(query)
            except _DroppedError:
                # The pooled connection had been dropped by the database (a restart, a
                # terminated backend), and the others likely were too: a new pool (those in
                # use go with the old one when returned). A read changes nothing, so it runs
                # once more, on a fresh connection.
                await self._engine.dispose(close=False)
            try:
                return await self._run(query)
            except _DroppedError as dropped:
                raise dropped.error from None

    async def _run(self, query: Callable[[Connection], T]) -> T:
        async with self._engine.connect() as connection:
            try:
                return await connection.run_sync(query)
            except Exception as exc:
                if self._timeout_s is not None and _sqlstate(exc) == _QUERY_CANCELED:
                    raise timed_out(self._timeout_s) from None
                if not isinstance(translate_error(exc), UnavailableError):
                    raise
                await connection.invalidate()  # never back into the pool
                raise _DroppedError(exc) from exc

    async def close(self) -> None:
        """The writer's engine owns the pool; nothing to close here."""


class Database:
    """The one database: reads on a pool, writes through the group-committing writer."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.dialect = database_url(self.url).get_backend_name()
        self._reader: ThreadReader | TaskReader
        self._writer: Writer
        #: SQLite's checkpoints (None on PostgreSQL).
        self.checkpointer: Checkpointer | None = None
        self._scanner: ThreadReader | LoopReader
        scans, timeout_s = settings.read_concurrency, settings.read_timeout_s
        if self.dialect == "sqlite":
            reads = _sqlite_engine(self.url, None, settings.pool_size, settings.sqlite_synchronous)
            self._reader = ThreadReader(reads, settings.pool_size)
            scanning = _sqlite_engine(self.url, None, scans, settings.sqlite_synchronous)
            self._scanner = ThreadReader(scanning, scans, timeout_s, NICENESS)
            writes = _sqlite_engine(
                self.url,
                "BEGIN IMMEDIATE",
                pool_size=1,
                synchronous=settings.sqlite_synchronous,
                autocheckpoint=False,
            )
            self._writer = ThreadWriter(writes, settings.write_batch_max)
            checkpoints = _sqlite_engine(
                self.url, None, pool_size=1, synchronous=settings.sqlite_synchronous
            )
            self.checkpointer = Checkpointer(checkpoints, settings.sqlite_checkpoint_frames)
        else:
            self._engine = _postgres_engine(
                self.url, settings.pool_size, settings.database_timeout_s
            )
            self._reader = TaskReader(self._engine)
            timeout_ms = f"{max(1, round(timeout_s * 1000))}ms"  # 0 would mean none
            timed = _postgres_engine(
                self.url, scans, settings.database_timeout_s, statement_timeout=timeout_ms
            )
            self._scanner = LoopReader(TaskReader(timed, timeout_s), timed)
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

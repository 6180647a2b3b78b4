"""SQLite's connections: the engine with its pragmas, the single writer thread that
group-commits, and the pool of reader threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event

from jobpulse.errors import UnavailableError
from jobpulse.storage.decoding import load_json
from jobpulse.storage.failures import translate_error, translated_errors
from jobpulse.storage.group_commit import Command, Request, Traffic, resolve, run_batch
from jobpulse.storage.sqlite.scans import lower_priority, within
from jobpulse.storage.urls import database_url

T = TypeVar("T")

_SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000")


def sqlite_engine(
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
    engine = create_engine(database_url(url), pool_size=pool_size, json_deserializer=load_json)

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
        self._queue: queue.SimpleQueue[Request | object | None] = queue.SimpleQueue()
        self._background: collections.deque[Request] = collections.deque()
        self.traffic = Traffic()
        self._thread = threading.Thread(target=self._run, name="jobpulse-writer", daemon=True)
        self._thread.start()

    async def submit(self, command: Command, background: bool = False, counted: bool = True) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if background:
            self._background.append(Request(command, future, loop))
            self._queue.put(_WAKE)
        else:
            if counted:
                self.traffic.queue()
            self._queue.put(Request(command, future, loop, counted))
        return await future

    async def close(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._engine.dispose()

    def _next_batch(self) -> tuple[list[Request], bool] | None:
        """The next batch of changes (False), or one background request alone (True): only
        when no change is queued. None once the writer is closing.
        """
        first: Request | object | None = _WAKE
        while first is _WAKE:
            try:  # wait for a change only while the background lane is empty
                first = self._queue.get(block=not self._background)
            except queue.Empty:
                return [self._background.popleft()], True
        if first is None:
            return None
        assert isinstance(first, Request)
        self.traffic.take(int(first.counted))
        return [first, *self._take_queued(self._batch_max - 1)], False

    def _join(self, joined: list[Request]) -> list[Command]:
        """Take the changes queued now into `joined`; their commands."""
        joined += self._take_queued(self._batch_max)
        return [request.command for request in joined]

    def _take_queued(self, most: int) -> list[Request]:
        """Up to `most` changes already queued, without waiting."""
        taken: list[Request] = []
        while len(taken) < most:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                self._queue.put(None)  # finish this batch, then stop
                break
            if isinstance(request, Request):
                taken.append(request)
        self.traffic.take(sum(request.counted for request in taken))
        return taken

    def _run(self) -> None:
        connection: Connection | None = None
        while (next_batch := self._next_batch()) is not None:
            batch, background = next_batch
            # Changes that come in while background work runs join its transaction: they
            # wait for its current step, not for a commit of its own.
            joined: list[Request] = []
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
    def _deliver(batch: list[Request], outcomes: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Request, bool, Any]]] = {}
        for request, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(request.loop, []).append((request, ok, value))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(resolve, pairs)


class ThreadReader:
    """SQLite reads: each query runs whole in one of a pool of threads; with `timeout_s`,
    interrupted past it, and with `niceness`, at a lower CPU priority (see storage/sqlite/scans.py).
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

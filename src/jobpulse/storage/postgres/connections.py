"""PostgreSQL's connections: the asyncpg engine, the writer tasks that group-commit, and
reads on pooled autocommit connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from jobpulse.errors import UnavailableError
from jobpulse.storage.decoding import load_json
from jobpulse.storage.failures import sqlstate, translate_error, translated_errors
from jobpulse.storage.group_commit import Command, Request, Traffic, resolve, run_batch
from jobpulse.storage.scans import timed_out
from jobpulse.storage.urls import database_url

T = TypeVar("T")


def postgres_engine(
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
        json_deserializer=load_json,
    )


#: The fewest commands a halved batch takes (fewer would cost more statements than the
#: overlap saves).
HALF_MIN = 4
#: How long a batch of changes runs before another writer starts one beside it. Until then
#: the next writer waits and takes what came meanwhile: a batch costs the server about
#: 0.6 ms of CPU whatever its size, so batches side by side that could have been one cost
#: more CPU a request (docs/performance.md); one that waits on a lock another replica holds
#: does not hold up the rest for longer than this.
OVERLAP_AFTER_S = 0.005


class TaskWriter:
    """PostgreSQL writers: a few tasks, each committing queued commands in batches, taking
    turns (see OVERLAP_AFTER_S).
    """

    def __init__(self, engine: AsyncEngine, workers: int, batch_max: int) -> None:
        self._engine = engine
        self.traffic = Traffic()
        self._workers = workers
        self._batch_max = batch_max
        self._queue: asyncio.Queue[Request] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Batches being run now, by all the writer tasks.
        self._in_flight = 0
        #: One writer at a time takes a batch from the queue (and waits to start it); made
        #: with the queue, for the event loop that runs the writers.
        self._taking: asyncio.Lock
        #: When each batch running now began (event-loop time), by its writer; batches of
        #: creates are left out, since they overlap by halves.
        self._started: dict[int, float] = {}
        #: Set when a batch ends, for a writer waiting to start (made with the queue).
        self._ended: asyncio.Event

    async def submit(self, command: Command, background: bool = False, counted: bool = True) -> Any:
        if background:  # beside the writers, in a transaction of its own
            async with self._engine.connect() as connection:
                [(ok, value)] = await connection.run_sync(run_batch, [command])
            if not ok:
                raise value
            return value
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._taking, self._ended = asyncio.Lock(), asyncio.Event()
            self._tasks = [
                asyncio.create_task(self._work(self._queue), name=f"jobpulse-writer-{n}")
                for n in range(self._workers)
            ]
        future = loop.create_future()
        if counted:
            self.traffic.queue()
        self._queue.put_nowait(Request(command, future, loop, counted))
        return await future

    async def close(self) -> None:
        """Let the writers commit what is queued, then stop them (see `_joined`)."""
        if self._queue is not None:
            await _joined(self._queue, self._tasks)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self, requests: asyncio.Queue[Request]) -> None:
        me = id(asyncio.current_task())
        while True:
            batch: list[Request] = []
            try:
                async with self._taking:
                    batch.append(await requests.get())
                    # Creates overlap by halves instead (see Creation.halved_when_idle).
                    gated = not getattr(batch[0].command, "halved_when_idle", False)
                    if gated:
                        await self._may_start()
                    self._take(requests, batch, halved=not gated and not self._in_flight)
            except BaseException:  # stopped while waiting to start: nothing has run
                _cancel(batch, requests)
                raise
            self._in_flight += 1
            if gated:
                self._started[me] = asyncio.get_running_loop().time()
            self.traffic.take(sum(request.counted for request in batch))
            try:
                async with self._engine.connect() as connection:
                    outcomes = await connection.run_sync(run_batch, [r.command for r in batch])
            except Exception as exc:
                outcomes = [(False, translate_error(exc))] * len(batch)
            except BaseException:  # cancelled mid-batch: whether it committed is not known
                _cancel(batch, requests)
                raise
            finally:
                self._in_flight -= 1
                if self._started.pop(me, None) is not None:
                    self._ended.set()
            resolve([(r, ok, value) for r, (ok, value) in zip(batch, outcomes, strict=True)])
            for _ in batch:
                requests.task_done()

    def _take(self, requests: asyncio.Queue[Request], batch: list[Request], halved: bool) -> None:
        """Fill `batch` with what is queued, up to the batch size; `halved`, to half of it
        (at least HALF_MIN), for another writer to build the rest of while this batch's
        statement runs (see Creation.halved_when_idle).
        """
        most = self._batch_max
        if halved:
            most = min(most, max(HALF_MIN, (requests.qsize() + 2) // 2))
        while len(batch) < most and not requests.empty():
            batch.append(requests.get_nowait())

    async def _may_start(self) -> None:
        """Until no batch is running, or the oldest running has run OVERLAP_AFTER_S."""
        loop = asyncio.get_running_loop()
        while self._started:
            left = min(self._started.values()) + OVERLAP_AFTER_S - loop.time()
            if left <= 0:
                return
            self._ended.clear()
            try:
                async with asyncio.timeout(left):
                    await self._ended.wait()
            except TimeoutError:
                return


async def _joined(requests: asyncio.Queue[Request], writers: list[asyncio.Task[None]]) -> None:
    """Until every queued request is done, or no writer is left to do them. Writers stopped
    from outside (the event loop ending, as `asyncio.run` does on its way out, or an exception
    a signal handler raised in their code) leave what is still queued, which is cancelled:
    nothing would commit it, and a request one of them had taken may never be marked done.
    """
    joined = asyncio.ensure_future(requests.join())
    try:
        while not joined.done():
            live = [writer for writer in writers if not writer.done()]
            if not live:
                queued = []
                while not requests.empty():
                    queued.append(requests.get_nowait())
                _cancel(queued, requests)
                return
            await asyncio.wait([joined, *live], return_when=asyncio.FIRST_COMPLETED)
    finally:
        joined.cancel()


def _cancel(batch: list[Request], requests: asyncio.Queue[Request]) -> None:
    """Cancel requests taken from `requests` (their callers see CancelledError)."""
    for request in batch:
        request.future.cancel()
        requests.task_done()


class _DroppedError(Exception):
    """A query failed on a connection the database no longer serves (`error`)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


#: PostgreSQL's SQLSTATE of a statement cancelled, as statement_timeout does.
_QUERY_CANCELED = "57014"


def pause(seconds: float) -> None:
    """Sleep `seconds` within a read under `run_sync`: its event loop runs on meanwhile."""
    await_only(asyncio.sleep(seconds))


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
                if self._timeout_s is not None and sqlstate(exc) == _QUERY_CANCELED:
                    raise timed_out(self._timeout_s) from None
                if not isinstance(translate_error(exc), UnavailableError):
                    raise
                await connection.invalidate()  # never back into the pool
                raise _DroppedError(exc) from exc

    async def close(self) -> None:
        """The writer's engine owns the pool; nothing to close here."""

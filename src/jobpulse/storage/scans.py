"""Long reads (listings, counts, figures) kept apart from the writer and the short reads:
threads at a lower CPU priority (SQLite) or an event loop (PostgreSQL) of their own, and a
deadline on every statement.

On a small machine a long read's CPU is what starves writes: SQLite runs a statement without
the GIL, so two long reads at the priority of the writer's thread and the server's event loop
took both cores from them; and on PostgreSQL the Python half of a read (its statement, its
thousands of grouped rows) ran on the server's own event loop, tens of milliseconds at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from jobpulse.errors import ReadTimeoutError

T = TypeVar("T")

#: How much less CPU a long read's thread asks for: a nice value (Linux gives each thread
#: its own). The writer and the event loop then have the CPU whenever they want it.
NICENESS = 10
#: SQLite virtual-machine steps between two looks at a statement's deadline (about 10 ms).
DEADLINE_STEPS = 200_000


def lower_priority(niceness: int = NICENESS) -> None:
    """Lower the calling thread's CPU priority by `niceness` (Linux only; else nothing)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def timed_out(seconds: float) -> ReadTimeoutError:
    """The error of a read stopped at its deadline."""
    return ReadTimeoutError(
        f"the read took more than {seconds:g} s and was stopped: narrow the window or the filters"
    )


def within(connection: Connection, query: Callable[[Connection], T], seconds: float) -> T:
    """`query(connection)` on SQLite, its statements interrupted once `seconds` have passed
    (ReadTimeoutError).
    """
    deadline = time.monotonic() + seconds
    driver = connection.connection.driver_connection
    assert driver is not None
    # SQLite asks every DEADLINE_STEPS steps, and stops the statement on a true answer.
    driver.set_progress_handler(lambda: time.monotonic() > deadline, DEADLINE_STEPS)
    try:
        return query(connection)
    except OperationalError:
        if time.monotonic() > deadline:
            raise timed_out(seconds) from None
        raise
    finally:
        driver.set_progress_handler(None, 0)


class Reader(Protocol):
    """Runs read queries (storage/engine.py: ThreadReader, TaskReader)."""

    async def run(self, query: Callable[[Connection], T]) -> T: ...

    async def close(self) -> None: ...


class LoopReader:
    """A PostgreSQL reader run on an event loop of its own, in a thread of its own: the
    Python work of its reads then takes turns with the server's loop at the GIL's switch
    interval (5 ms) rather than holding that loop for all of it. The thread keeps its CPU
    priority: its work is Python, which the GIL already takes turns at, and a lower one
    delayed every listing's wake-up on a busy machine. `engine` is the reader's, used only on
    that loop, and closed with it.
    """

    def __init__(self, reader: Reader, engine: AsyncEngine) -> None:
        self._reader = reader
        self._engine = engine
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="jobpulse-scans", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def run(self, query: Callable[[Connection], T]) -> T:
        return await self._call(self._reader.run(query))

    async def close(self) -> None:
        await self._call(self._engine.dispose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()

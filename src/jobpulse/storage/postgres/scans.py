"""PostgreSQL's long reads: on an event loop of their own (see storage/scans.py for why)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from jobpulse.storage.scans import Reader

T = TypeVar("T")


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

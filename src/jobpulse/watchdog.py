"""The event-loop watchdog: a heartbeat task on the loop and a thread that checks on it.

A late heartbeat is lag (over `lag_warn_s` warns); none for `stall_s` is a stall, logged as an
error, and as critical when the next check finds it still stalled. A stall dumps every
thread's stack and the loop's tasks (at most once per `dump_every_s`) and names the jobs being
handled, so the blocking frame shows in the log. The watchdog keeps watching afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger("jobpulse.watchdog")


@dataclass(frozen=True, slots=True)
class Health:
    """What /healthz reports about the loop."""

    state: str  # ok | lagging | stalled
    lag_s: float


class Watchdog:
    """Watches one event loop from a thread of its own."""

    def __init__(
        self,
        *,
        beat_s: float = 1.0,
        check_s: float = 5.0,
        lag_warn_s: float = 2.0,
        stall_s: float = 15.0,
        dump_every_s: float = 60.0,
        handling: Callable[[], Iterable[str]] = tuple,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.beat_s, self.check_s = beat_s, check_s
        self.lag_warn_s, self.stall_s, self.dump_every_s = lag_warn_s, stall_s, dump_every_s
        self._handling = handling
        self._clock = clock
        self.lag_s = 0.0
        #: The worst lag since the last check: a spike between two checks is not missed.
        self.worst_lag_s = 0.0
        self.last_beat = clock()
        self.stalls = 0
        self.health = Health("ok", 0.0)
        self._last_dump = -float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()

    async def beat(self) -> None:
        """The loop's heartbeat; run it as a task on the watched loop."""
        self._loop = asyncio.get_running_loop()
        thread = threading.Thread(target=self._watch, name="jobpulse-watchdog", daemon=True)
        thread.start()
        try:
            while True:
                expected = self._clock() + self.beat_s
                await asyncio.sleep(self.beat_s)
                now = self._clock()
                self.lag_s = max(0.0, now - expected)
                self.worst_lag_s = max(self.worst_lag_s, self.lag_s)
                self.last_beat = now
        finally:
            self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.check_s):
            self.check()

    def check(self) -> Health:
        """Judge the loop now, log what is wrong, and remember it for /healthz."""
        silent = self._clock() - self.last_beat
        worst, self.worst_lag_s = self.worst_lag_s, 0.0
        if silent > self.stall_s:
            self.stalls += 1
            level = logging.CRITICAL if self.stalls > 1 else logging.ERROR
            logger.log(level, "event loop stalled: no heartbeat for %.1fs%s", silent, self._dump())
            self.health = Health("stalled", silent)
        elif worst > self.lag_warn_s:
            self.stalls = 0
            logger.warning("event loop lagging by %.1fs", worst)
            self.health = Health("lagging", worst)
        else:
            self.stalls = 0
            self.health = Health("ok", self.lag_s)
        return self.health

    def _dump(self) -> str:
        """Every thread's stack, the loop's tasks and the jobs in hand (once a minute at most)."""
        now = self._clock()
        if now - self._last_dump < self.dump_every_s:
            return ""
        self._last_dump = now
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        try:
            jobs = ", ".join(self._handling()) or "none"
        except RuntimeError:  # the set changed while we read it
            jobs = "unknown"
        parts = [f"\njobs being handled: {jobs}"]
        for ident, frame in sys._current_frames().items():
            stack = "".join(traceback.format_stack(frame))
            parts.append(f"\n--- thread {names.get(ident, ident)}\n{stack}")
        if self._loop is not None:
            try:
                tasks = asyncio.all_tasks(self._loop)
            except RuntimeError:  # the set changed while we looked: the next dump will tell
                tasks = set()
            parts += [f"\n--- task {task.get_name()}: {task.get_coro()!r}" for task in tasks]
        return "".join(parts)

"""Long reads (listings, counts, figures) kept apart from the writer and the short reads:
threads at a lower CPU priority (SQLite) or an event loop (PostgreSQL) of their own, a
deadline on every statement, and a pace (figures read in slices, pausing between them while
changes are being written).

On a small machine a long read's CPU is what starves writes: SQLite runs a statement without
the GIL, so two long reads at the priority of the writer's thread and the server's event loop
took both cores from them; and on PostgreSQL the Python half of a read (its statement, its
thousands of grouped rows) ran on the server's own event loop, tens of milliseconds at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import Connection

from jobpulse.errors import ReadTimeoutError

T = TypeVar("T")

#: Seconds a paced read's slice should take: short enough that a pause comes soon after
#: changes do, long enough that a slice's own statements cost little beside it.
SLICE_S = 0.05
#: How much larger one slice may be than the one before it (in whole widths).
_GROWTH = 4
#: The most slices a window is cut into: each costs its statements' round trips whatever its
#: width, and on a busy machine that fixed cost alone can pass `slice_s`, which would keep
#: every slice one bucket wide (366 of them for a year by the day, each followed by a pause).
MAX_SLICES = 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timed_out(seconds: float) -> ReadTimeoutError:
    """The error of a read stopped at its deadline."""
    return ReadTimeoutError(
        f"the read took more than {seconds:g} s and was stopped: narrow the window or the filters"
    )


class Pacer:
    """Paces a long read cut in slices (see `slices`): while changes are being written
    (`busy()`), it pauses between two slices so that the read takes about `share` of a core
    (0.5: it pauses as long as the slice took), and reads at full speed while none are. Past
    `timeout_s` from its start the read is stopped (ReadTimeoutError), pauses included.

    `pause(seconds)` sleeps where the read runs (a thread, or an event loop under
    `run_sync`); `spent()` measures what a slice took from the others: the CPU time of the
    read's thread where the read runs whole in it (SQLite: a slice it waited for the CPU or
    the GIL through took nothing meanwhile), else the time.
    """

    def __init__(
        self,
        busy: Callable[[], bool],
        pause: Callable[[float], None],
        share: float,
        timeout_s: float,
        spent: Callable[[], float] = time.monotonic,
        slice_s: float = SLICE_S,
        clock: Callable[[], float] = time.monotonic,
        max_slices: int = MAX_SLICES,
    ) -> None:
        self._busy = busy
        self._pause = pause
        self._rest = 1 / share - 1  # seconds of pause for each second read
        self._timeout_s = timeout_s
        self._spent = spent
        self._slice_s = slice_s
        self._clock = clock
        self._max_slices = max_slices
        self._deadline = clock() + timeout_s
        #: Seconds the read has paused, in all.
        self.paused_s = 0.0

    def slices(
        self, since: datetime, until: datetime, width: timedelta
    ) -> Iterator[tuple[datetime, datetime]]:
        """[since, until) in consecutive slices cut at whole multiples of `width` since the
        Unix epoch (an hour's or a day's bucket is never cut), each as many widths as take
        about `slice_s` to read, judged by the slice before (at most 4 times as many, at
        least half), and never so few that the window takes more than `max_slices`; between
        two, the pause.
        """
        least = max(1, math.ceil((until - since) / width / self._max_slices))
        widths = least
        start = since
        while start < until:
            cut = _EPOCH + ((start - _EPOCH) // width + widths) * width
            end = min(until, cut)
            began = self._spent()
            yield start, end  # the caller reads the slice before asking for the next one
            took = self._spent() - began
            start = end
            if start < until:
                fits = round(widths * self._slice_s / max(took, 1e-6))
                widths = max(least, widths // 2, min(widths * _GROWTH, fits))
                self.between(took)

    def between(self, took: float) -> None:
        """After a slice that took `took` seconds: stop past the deadline, else pause while
        changes are being written.
        """
        left = self._deadline - self._clock()
        if left <= 0:
            raise timed_out(self._timeout_s)
        if self._rest and self._busy():
            rest = min(took * self._rest, left)
            self._pause(rest)
            self.paused_s += rest


class Reader(Protocol):
    """Runs read queries (storage/engine.py: ThreadReader, TaskReader)."""

    async def run(self, query: Callable[[Connection], T]) -> T: ...

    async def close(self) -> None: ...

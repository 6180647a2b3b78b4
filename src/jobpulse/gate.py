"""Turns for long reads (listings, counts, figures): a few at once per process and per
organization, so that a burst of them queues for a short while, or is told to come back,
rather than taking the connections, threads and CPU that writes need; and while changes are
being written, a turn rests after its read before the next read takes it, so that however
cheap each read, the reads of a burst take at most their share of the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable

from jobpulse.config import Settings
from jobpulse.errors import TooManyRequestsError


class _Slots:
    """One organization's turns, and how many callers hold or wait for one."""

    __slots__ = ("semaphore", "users")

    def __init__(self, size: int) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0


def _never() -> bool:
    return False


class ReadGate:
    """At most `process_max` long reads at once, `organization_max` of one organization; a
    read waits up to `wait_s` for its turn, then TooManyRequestsError. While `busy()` (changes
    are being written), a turn is given back only after resting as long again as its read
    took times (1 / `share` - 1): the read's answer goes out at once, the next read waits.
    """

    def __init__(
        self,
        process_max: int,
        organization_max: int,
        wait_s: float,
        share: float = 1.0,
        busy: Callable[[], bool] = _never,
    ) -> None:
        self.process_max = process_max
        self.organization_max = organization_max
        self.wait_s = wait_s
        self._rest = 1 / share - 1
        self._busy = busy
        self._process = asyncio.Semaphore(process_max)
        self._organizations: dict[str, _Slots] = {}
        #: Turns resting before they are given back.
        self._resting: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, busy: Callable[[], bool] = _never) -> ReadGate:
        """The gate `settings` ask for; `busy` tells whether changes are being written."""
        return cls(
            settings.read_concurrency,
            settings.read_organization_concurrency,
            settings.read_wait_s,
            settings.read_share,
            busy,
        )

    @property
    def retry_after_s(self) -> int:
        """Seconds a caller turned away is told to wait: as long as it waited, at least 1."""
        return max(1, math.ceil(self.wait_s))

    @contextlib.asynccontextmanager
    async def turn(self, organization_id: str) -> AsyncIterator[None]:
        """Hold one of the organization's turns and one of the process's while the block
        runs; TooManyRequestsError if they are not free within `wait_s`.
        """
        slots = self._organizations.get(organization_id)
        if slots is None:
            slots = self._organizations[organization_id] = _Slots(self.organization_max)
        slots.users += 1
        held = contextlib.AsyncExitStack()
        held.callback(self._leave, organization_id, slots)
        try:
            try:
                async with asyncio.timeout(self.wait_s):
                    await held.enter_async_context(slots.semaphore)
                    await held.enter_async_context(self._process)
            except TimeoutError:
                raise TooManyRequestsError(
                    f"too many listings, counts or figures at once (at most "
                    f"{self.organization_max} for an organization, {self.process_max} in "
                    f"all); retry after {self.retry_after_s} s",
                    retry_after_s=self.retry_after_s,
                ) from None
            began = time.monotonic()
            yield
            rest = (time.monotonic() - began) * self._rest
            if rest > 0 and self._busy():
                task = asyncio.create_task(self._give_back(held.pop_all(), rest))
                self._resting.add(task)
                task.add_done_callback(self._resting.discard)
        finally:
            await held.aclose()

    async def _give_back(self, held: contextlib.AsyncExitStack, rest: float) -> None:
        """Give back a turn after it rested `rest` seconds."""
        try:
            await asyncio.sleep(rest)
        finally:
            await held.aclose()

    def _leave(self, organization_id: str, slots: _Slots) -> None:
        slots.users -= 1
        if slots.users == 0:  # nobody holds or waits: forget the organization
            del self._organizations[organization_id]

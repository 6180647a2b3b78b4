"""Turns for long reads (listings, counts, figures): a few at once per process and per
organization, so that a burst of them queues for a short while, or is told to come back,
rather than taking the connections, threads and CPU that writes need.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator

from jobpulse.config import Settings
from jobpulse.errors import TooManyRequestsError


class _Slots:
    """One organization's turns, and how many callers hold or wait for one."""

    __slots__ = ("semaphore", "users")

    def __init__(self, size: int) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0


class ReadGate:
    """At most `process_max` long reads at once, `organization_max` of one organization; a
    read waits up to `wait_s` for its turn, then TooManyRequestsError.
    """

    def __init__(self, process_max: int, organization_max: int, wait_s: float) -> None:
        self.process_max = process_max
        self.organization_max = organization_max
        self.wait_s = wait_s
        self._process = asyncio.Semaphore(process_max)
        self._organizations: dict[str, _Slots] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadGate:
        """The gate `settings` ask for."""
        return cls(
            settings.read_concurrency, settings.read_organization_concurrency, settings.read_wait_s
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
        try:
            async with contextlib.AsyncExitStack() as held:
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
                yield
        finally:
            slots.users -= 1
            if slots.users == 0:  # nobody holds or waits: forget the organization
                del self._organizations[organization_id]

"""A process's delivery slots, shared fairly between organizations and hosts.

A message is sent only while its organization has fewer than `per_org` sends in flight and
its host fewer than `per_host`; when a slot frees, it goes to the waiting message of the
organization with the fewest sends in flight (the oldest first among equals). So one
tenant's hanging receivers hold `per_org` slots at most, and a tenant with nothing in flight
is served next. Messages with no organization (operator alerts, step events, to URLs the
operator chose) are limited by their host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

_Key = TypeVar("_Key")


@dataclass(eq=False, slots=True)
class _Waiter:
    seq: int
    org: str | None
    host: str
    ready: asyncio.Future[None]


class FairSlots:
    """`total` sends at once, at most `per_org` of one organization's and `per_host` to one
    host; tells `on_change` when a message starts or stops waiting.

    Waiting messages are kept in one queue per (organization, host), oldest first, so handing
    out a slot looks at each pair once, not at every waiting message.
    """

    def __init__(
        self, total: int, per_org: int, per_host: int, on_change: Callable[[], None]
    ) -> None:
        self.total = total
        self.per_org = per_org
        self.per_host = per_host
        self._on_change = on_change
        self._sending = 0
        self._sending_org: Counter[str | None] = Counter()
        self._sending_host: Counter[str] = Counter()
        self._waiting: dict[tuple[str | None, str], deque[_Waiter]] = {}
        self._seq = itertools.count()

    @property
    def blocked(self) -> int:
        """Messages waiting because their organization or host is at its cap (not for a
        slot of the process): a slow tenant's backlog, which claims do not count as ready.
        """
        return sum(
            len(queue)
            for (org, host), queue in self._waiting.items()
            if not self._may_send(org, host)
        )

    @contextlib.asynccontextmanager
    async def hold(self, org: str | None, host: str) -> AsyncIterator[None]:
        """Wait for a slot this message may take, and hold it."""
        waiter = _Waiter(next(self._seq), org, host, asyncio.get_running_loop().create_future())
        if self._sending < self.total and not self._waiting and self._may_send(org, host):
            self._take(waiter)  # a free slot and nobody before it: no queue, no wake-up
        else:
            self._waiting.setdefault((org, host), deque()).append(waiter)
            self._grant()
            self._on_change()
        sending = False
        try:
            await waiter.ready
            sending = True
            yield
        finally:
            if sending or (waiter.ready.done() and not waiter.ready.cancelled()):
                self._release(waiter)
            else:
                self._forget(waiter)
            self._grant()
            self._on_change()

    def _may_send(self, org: str | None, host: str) -> bool:
        org_free = org is None or self._sending_org[org] < self.per_org
        return org_free and self._sending_host[host] < self.per_host

    def _grant(self) -> None:
        """Give free slots to waiting messages: the least busy organization's first."""
        while self._sending < self.total and self._waiting:
            chosen: deque[_Waiter] | None = None
            best = (0, 0)
            for (org, host), queue in self._waiting.items():
                if self._may_send(org, host):
                    rank = (self._sending_org[org], queue[0].seq)
                    if chosen is None or rank < best:
                        chosen, best = queue, rank
            if chosen is None:
                return
            waiter = chosen.popleft()
            if not chosen:
                del self._waiting[(waiter.org, waiter.host)]
            self._take(waiter)

    def _take(self, waiter: _Waiter) -> None:
        self._sending += 1
        self._sending_org[waiter.org] += 1
        self._sending_host[waiter.host] += 1
        waiter.ready.set_result(None)

    def _forget(self, waiter: _Waiter) -> None:
        """A waiter that gave up (cancelled) before it got a slot."""
        key = (waiter.org, waiter.host)
        queue = self._waiting.get(key)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[key]

    def _release(self, waiter: _Waiter) -> None:
        self._sending -= 1
        _drop(self._sending_org, waiter.org)
        _drop(self._sending_host, waiter.host)


def _drop(counts: Counter[_Key], key: _Key) -> None:
    """One fewer for `key`; keys at zero go, so idle tenants and hosts cost nothing."""
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]

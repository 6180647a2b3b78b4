"""A process's claimed messages, handed to its senders fairly between organizations and hosts.

A message is handed out only while its organization has fewer than `per_org` sends in flight
and its host fewer than `per_host`; a sender that asks gets the waiting message of the
organization with the fewest sends in flight (the oldest first among equals). So one
tenant's hanging receivers hold `per_org` senders at most, and a tenant with nothing in
flight is served next. Messages with no organization (operator alerts, step events, to URLs
the operator chose) are limited by their host only.

The process's total is the number of senders (a fixed set of coroutines, see
`webhooks/delivery.py`): a message costs a queue entry, not a task and a future of its own.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from typing import Generic, NamedTuple, TypeVar

_Key = TypeVar("_Key")
_Item = TypeVar("_Item")


class Taken(NamedTuple, Generic[_Item]):
    """A message handed to a sender, with what its send counts against (give it back to
    `FairQueue.done`).
    """

    item: _Item
    org: str | None
    host: str


class FairQueue(Generic[_Item]):
    """Messages waiting for a sender, kept in one queue per (organization, host), oldest
    first, so handing one out looks at each pair once, not at every waiting message.
    """

    def __init__(self, per_org: int, per_host: int) -> None:
        self.per_org = per_org
        self.per_host = per_host
        self._sending_org: Counter[str | None] = Counter()
        self._sending_host: Counter[str] = Counter()
        self._waiting: dict[tuple[str | None, str], deque[tuple[int, _Item]]] = {}
        self._seq = itertools.count()
        #: Senders waiting for a message they may send, each on a future of its own.
        self._idle: deque[asyncio.Future[None]] = deque()

    @property
    def blocked(self) -> int:
        """Messages waiting because their organization or host is at its cap (not for a
        sender): a slow tenant's backlog, which claims do not count as ready.
        """
        return sum(
            len(queue)
            for (org, host), queue in self._waiting.items()
            if not self._may_send(org, host)
        )

    def put(self, item: _Item, org: str | None, host: str) -> None:
        """Queue a message for the next sender that may take it."""
        self._waiting.setdefault((org, host), deque()).append((next(self._seq), item))
        if self._idle and self._may_send(org, host):
            self._wake()

    async def get(self) -> Taken[_Item]:
        """The next message this sender may send (waiting for one), counted as sending."""
        while True:
            taken = self._take()
            if taken is not None:
                return taken
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: another sender takes the wake-up
                else:
                    self._idle.remove(waiter)
                raise

    def done(self, taken: Taken[_Item]) -> None:
        """A message handed out is sent (or given up): its slots go to the waiting ones."""
        _drop(self._sending_org, taken.org)
        _drop(self._sending_host, taken.host)
        if self._idle and self._waiting:
            self._wake()

    def _may_send(self, org: str | None, host: str) -> bool:
        org_free = org is None or self._sending_org[org] < self.per_org
        return org_free and self._sending_host[host] < self.per_host

    def _take(self) -> Taken[_Item] | None:
        """The least busy organization's oldest message that may be sent, if any."""
        chosen: deque[tuple[int, _Item]] | None = None
        key: tuple[str | None, str] = (None, "")
        best = (0, 0)
        for pair, queue in self._waiting.items():
            if self._may_send(*pair):
                rank = (self._sending_org[pair[0]], queue[0][0])
                if chosen is None or rank < best:
                    chosen, key, best = queue, pair, rank
        if chosen is None:
            return None
        _seq, item = chosen.popleft()
        if not chosen:
            del self._waiting[key]
        org, host = key
        self._sending_org[org] += 1
        self._sending_host[host] += 1
        return Taken(item, org, host)

    def _wake(self) -> None:
        """Wake one idle sender (it looks for a message again)."""
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _drop(counts: Counter[_Key], key: _Key) -> None:
    """One fewer for `key`; keys at zero go, so idle tenants and hosts cost nothing."""
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]

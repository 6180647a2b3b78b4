"""The record of delivery attempts: written in batches, most of them with the next claim.

A delivery does not wait for its record: its message stays leased until it is written, and
if that fails, the lease runs out and the message is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from jobpulse.metrics import Metrics
from jobpulse.storage import attempts
from jobpulse.storage.store import JobStore

logger = logging.getLogger("jobpulse.webhooks")

#: How long an attempt waits to be written with the next claim, in its transaction, before
#: it is written in a batch of its own: while a backlog drains, claims come every few
#: milliseconds and carry the record of all that ended since the last.
WAIT_FOR_CLAIM_S = 0.1


class Recorder:
    """Writes attempts in batches: those a claim does not take (see `take`) within
    WAIT_FOR_CLAIM_S, and every attempt that ends while a batch is being written, go into
    one batch, so a burst costs a few statements, not several per message. The attempts are
    counted by outcome a batch at a time, as it goes to be written.
    """

    def __init__(self, store: JobStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._pending: list[attempts.Outcome] = []
        #: Outcomes a claim took (and counted) but did not write.
        self._returned: list[attempts.Outcome] = []
        self._writer: asyncio.Task[None] | None = None
        #: Set to write what is pending now, without waiting for a claim.
        self._now = asyncio.Event()

    def add(self, outcome: attempts.Outcome) -> None:
        """Record `outcome` with the next claim or batch."""
        self._pending.append(outcome)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())

    def take(self) -> list[attempts.Outcome]:
        """The outcomes not yet being written, counted, for a claim to write (see
        `JobStore.claim_outbox`); give them back with `give_back` if it fails.
        """
        taken, self._pending = self._pending, []
        self._count(taken)
        return taken

    def give_back(self, outcomes: list[attempts.Outcome]) -> None:
        """Outcomes a claim took and did not write: they go in a batch of their own."""
        if outcomes:
            self._returned += outcomes
            self._now.set()
            if self._writer is None:
                self._writer = asyncio.create_task(self._write_all())

    async def flush(self) -> None:
        """Return once every outcome added so far is written (or has failed)."""
        self._now.set()
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_all(self) -> None:
        try:
            while True:
                if not self._now.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._now.wait(), WAIT_FOR_CLAIM_S)
                if not (self._pending or self._returned):
                    return  # a claim took them all
                fresh, self._pending = self._pending, []
                batch, self._returned = [*self._returned, *fresh], []
                self._count(fresh)
                try:
                    await self._store.record_attempts(batch)
                except Exception:
                    logger.exception("could not record %d delivery attempts", len(batch))
        finally:
            self._writer = None
            self._now.clear()

    def _count(self, batch: list[attempts.Outcome]) -> None:
        outcomes = Counter((message.event_type, attempt.state) for message, attempt, _ in batch)
        for (event_type, state), number in outcomes.items():
            self._metrics.child(self._metrics.callbacks, event_type, state).inc(number)

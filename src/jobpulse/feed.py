"""The live feed of applied history events, shared by every stream of one process.

One task reads new events from the database (the history table is the source of truth) and
hands each to the subscribers whose view it belongs to: a member sees its own jobs' events,
an admin its organization's, under the subscriber's list filters. It reads when this
process commits a change, when another replica says it did (PostgreSQL LISTEN/NOTIFY on
`jobpulse_events`), and every `poll_s` while anyone listens.

A subscriber that resumes from a position first catches up from the database, then takes
the live events after where it joined: nothing is lost, nothing sent twice. One that cannot
keep up (its buffer full) is told so and dropped; it resumes from its last position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from sqlalchemy import Connection, text

from jobpulse.domain import Actor, Job
from jobpulse.listing import JobFilter
from jobpulse.storage import events
from jobpulse.storage.engine import Database
from jobpulse.storage.events import Happened, Position

logger = logging.getLogger("jobpulse.feed")

#: The channel replicas announce new events on (PostgreSQL).
CHANNEL = "jobpulse_events"
#: Events read per query.
READ_BATCH = 500
#: Events a subscriber may have waiting before it is dropped as too slow.
BUFFER_MAX = 1000


class TooSlowError(Exception):
    """The subscriber's buffer filled up: it must resume from its last position."""


class Subscriber:
    """One stream's view of the feed."""

    def __init__(self, actor: Actor, query: JobFilter, joined_at: Position) -> None:
        self.actor = actor
        self.query = query
        #: The feed's position when it joined: live events come after it.
        self.joined_at = joined_at
        self._queue: asyncio.Queue[Happened | None] = asyncio.Queue(BUFFER_MAX + 1)
        self.dropped = False

    def sees(self, job: Job) -> bool:
        """Whether this subscriber's view holds `job`."""
        actor = self.actor
        if job.organization_id != actor.organization_id:
            return False
        if not actor.is_admin and job.user_id != actor.user_id:
            return False
        return self.query.matches(job)

    def offer(self, happened: Happened) -> None:
        if self.dropped or not self.sees(happened.job):
            return
        if self._queue.qsize() >= BUFFER_MAX:
            self.dropped = True
            self._queue.put_nowait(None)  # the one slot kept for this
            return
        self._queue.put_nowait(happened)

    async def next(self) -> Happened:
        """The next live event; TooSlowError once dropped."""
        found = await self._queue.get()
        if found is None:
            raise TooSlowError
        return found


class EventFeed:
    """Reads new events and fans them out to this process's subscribers."""

    def __init__(self, database: Database, poll_s: float = 0.05) -> None:
        self._database = database
        self._poll_s = poll_s if database.dialect == "postgresql" else 1.0
        self._subscribers: set[Subscriber] = set()
        self._head: Position | None = None
        self._wake = asyncio.Event()
        #: Set when this process committed events (other replicas are then told).
        self._local = False

    def committed(self) -> None:
        """This process committed events: read them (and tell the other replicas)."""
        self._local = True
        self._wake.set()

    def _heard(self, _payload: str | None) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Read and hand out events until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._database.listen(CHANNEL, self._heard))
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_s):  # wait_for may swallow a cancel
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self._round()
                except Exception:  # the database may be away for a while: keep going
                    logger.exception("reading the event feed failed")
                    await asyncio.sleep(self._poll_s)

    async def _round(self) -> None:
        if self._local:
            self._local = False
            if self._database.dialect == "postgresql":
                await self._database.write(_announce)
        if not self._subscribers or self._head is None:
            return
        while True:
            found = await self._database.read(events.after, self._head, READ_BATCH)
            for happened in found:
                for subscriber in tuple(self._subscribers):
                    subscriber.offer(happened)
            if found:
                self._head = found[-1].position
            if len(found) < READ_BATCH:
                return

    async def _join(self, actor: Actor, query: JobFilter) -> Subscriber:
        if self._head is None or not self._subscribers:
            self._head = await self._database.read(events.start)
        subscriber = Subscriber(actor, query, self._head)
        self._subscribers.add(subscriber)
        return subscriber

    async def follow(
        self, actor: Actor, query: JobFilter, after: Position | None = None
    ) -> AsyncGenerator[Happened, None]:
        """The events of the actor's view under `query`: those after `after` first (from the
        database), then live ones, until the caller stops or TooSlowError.
        """
        subscriber = await self._join(actor, query)
        try:
            last = after
            while last is not None and last < subscriber.joined_at:
                missed = await self._database.read(events.after, last, READ_BATCH, actor, query)
                missed = [h for h in missed if h.position <= subscriber.joined_at]
                for happened in missed:
                    yield happened
                if len(missed) < READ_BATCH:
                    break
                last = missed[-1].position
            last = max(after or subscriber.joined_at, subscriber.joined_at)
            while True:
                happened = await subscriber.next()
                if happened.position > last:
                    last = happened.position
                    yield happened
        finally:
            self._subscribers.discard(subscriber)


def _announce(connection: Connection) -> None:
    connection.execute(text(f"NOTIFY {CHANNEL}"))

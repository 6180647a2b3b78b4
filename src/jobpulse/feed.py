"""The live feed of applied history events, shared by every stream of one process.

One task reads new events from the database (the history table is the source of truth) and
hands each to the subscribers whose view it belongs to: a member sees its own jobs' events,
an admin its organization's, under the subscriber's list filters. It reads when this
process commits a change, when another replica says it did (PostgreSQL LISTEN/NOTIFY on
`jobpulse_events`), and every `poll_s` while anyone listens.

A subscriber that resumes from a position first catches up from the database, then takes
the live events after where it joined: nothing is lost, nothing sent twice. One that cannot
keep up (its buffer full) is told so and dropped; it resumes from its last position. One
whose grant ends (its key revoked, its session ended: see jobpulse.grants) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime

from jobpulse.domain import Actor, Job
from jobpulse.grants import Grant
from jobpulse.listing import JobFilter
from jobpulse.storage.events import Happened, Position, Start
from jobpulse.storage.store import FEED_CHANNEL, JobStore

logger = logging.getLogger("jobpulse.feed")

#: Events read per query.
READ_BATCH = 500
#: Events a subscriber may have waiting before it is dropped as too slow.
BUFFER_MAX = 1000


class TooSlowError(Exception):
    """The subscriber's buffer filled up: it must resume from its last position."""


class RevokedError(Exception):
    """What the subscriber's stream stood on (its key, its session) was revoked."""


#: What a subscriber's queue ends with: dropped as too slow (None), or revoked.
_REVOKED = object()


class Chunk:
    """The events of one read for one view, each encoded once for all its subscribers.
    Heartbeats have no position (None): they are news of the moment, never resumed.
    """

    def __init__(self, events: list[tuple[Position | None, bytes]]) -> None:
        self.events = events
        self.last = events[-1][0]
        self._text: bytes | None = None

    def after(self, position: Position | None, start: Start | None = None) -> bytes:
        """The encoded events after `position` (all of them, usually: joined once), less
        those committed before `start` (given).
        """
        first = self.events[0][0]
        if start is not None and start.committed:
            return b"".join(
                text
                for at, text in self.events
                if at is None or (not start.is_before(at) and (position is None or at > position))
            )
        if position is None or first is None or first > position:
            if self._text is None:
                self._text = b"".join(text for _position, text in self.events)
            return self._text
        return b"".join(text for at, text in self.events if at is not None and at > position)


class Subscriber:
    """One stream's view of the feed."""

    def __init__(
        self,
        actor: Actor,
        query: JobFilter,
        joined_at: Position,
        heartbeats: bool = False,
        start: Start | None = None,
    ) -> None:
        self.actor = actor
        self.query = query
        #: Whether it also takes heartbeats (`event: heartbeat`, without a position).
        self.heartbeats = heartbeats
        #: Subscribers with the same view share what is read and encoded for it.
        self.view = (actor, repr(query), heartbeats)
        #: The feed's position when it joined: live events come after it.
        self.joined_at = joined_at
        #: Where the history ended when it joined (what was committed before is not news).
        self.start = start
        self._queue: asyncio.Queue[Chunk | object | None] = asyncio.Queue()
        self._waiting = 0
        self.dropped = False

    def sees(self, job: Job) -> bool:
        """Whether this subscriber's view holds `job`."""
        actor = self.actor
        if job.organization_id != actor.organization_id:
            return False
        if not actor.is_admin and job.user_id != actor.user_id:
            return False
        return self.query.matches(job)

    def offer(self, chunk: Chunk) -> None:
        if self.dropped:
            return
        if self._waiting + len(chunk.events) > BUFFER_MAX:
            self.dropped = True
            self._queue.put_nowait(None)
            return
        self._waiting += len(chunk.events)
        self._queue.put_nowait(chunk)

    def revoke(self) -> None:
        """End the subscription: its grant ended."""
        self.dropped = True
        self._queue.put_nowait(_REVOKED)

    async def next(self) -> Chunk:
        """The next live chunk; TooSlowError once dropped, RevokedError once revoked."""
        found = await self._queue.get()
        if found is None:
            raise TooSlowError
        if not isinstance(found, Chunk):
            raise RevokedError
        self._waiting -= len(found.events)
        return found


class EventFeed:
    """Reads new events and fans them out to this process's subscribers, each event encoded
    (by `encode`) once per view however many streams share that view.
    """

    def __init__(
        self,
        store: JobStore,
        encode: Callable[[Happened], bytes],
        encode_beat: Callable[[Job], bytes],
        poll_s: float = 0.05,
        gap_s: float = 0.1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._clock = clock
        self._encode = encode
        self._encode_beat = encode_beat
        #: The latest heartbeat stamp handed out (None while nobody takes heartbeats).
        self._beats_seen: datetime | None = None
        self._poll_s = poll_s if store.pushes_events else 1.0
        #: The least time between two reads: events of a burst go out together, so the cost
        #: of a stream is per read, not per event.
        self._gap_s = gap_s
        self._subscribers: set[Subscriber] = set()
        self._head: Position | None = None
        self._wake = asyncio.Event()
        #: Set when this process committed events (other replicas are then told).
        self._local = False

    @property
    def streams(self) -> int:
        """How many streams follow the feed in this process."""
        return len(self._subscribers)

    def committed(self) -> None:
        """This process committed events: read them (and tell the other replicas)."""
        self._local = True
        self._wake.set()

    def _heard(self, _payload: str | None) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Read and hand out events until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._store.listen(FEED_CHANNEL, self._heard))
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
                await asyncio.sleep(self._gap_s)

    async def _round(self) -> None:
        if self._local:
            self._local = False
            await self._store.announce_events()
        if not self._subscribers or self._head is None:
            return
        views: dict[tuple[Actor, str, bool], list[Subscriber]] = {}
        for subscriber in self._subscribers:
            views.setdefault(subscriber.view, []).append(subscriber)
        if self._beats_seen is not None:  # first: a heartbeat comes before what ends a job
            await self._beats(views)
        while True:
            found = await self._store.events_after(self._head, READ_BATCH)
            if found:
                self._hand_out(views, [(h.position, h.job, h) for h in found])
                self._head = found[-1].position
            if len(found) < READ_BATCH:
                return

    async def _beats(self, views: dict[tuple[Actor, str, bool], list[Subscriber]]) -> None:
        """Hand out the heartbeats sent since the last round to those who take them."""
        assert self._beats_seen is not None
        found = await self._store.beats_after(self._beats_seen, READ_BATCH)
        if not found:
            return
        self._beats_seen = max(job.heartbeat_at or self._beats_seen for job in found)
        beating = {view: members for view, members in views.items() if view[2]}
        self._hand_out(beating, [(None, job, job) for job in found])

    def _hand_out(
        self,
        views: dict[tuple[Actor, str, bool], list[Subscriber]],
        found: list[tuple[Position | None, Job, Happened | Job]],
    ) -> None:
        for members in views.values():
            sees = members[0].sees
            encoded = [
                (position, self._encoded(what)) for position, job, what in found if sees(job)
            ]
            if encoded:
                chunk = Chunk(encoded)
                for subscriber in members:
                    subscriber.offer(chunk)

    def _encoded(self, what: Happened | Job) -> bytes:
        return self._encode_beat(what) if isinstance(what, Job) else self._encode(what)

    async def _join(self, actor: Actor, query: JobFilter, heartbeats: bool) -> Subscriber:
        start = await self._store.feed_start()
        now = start.position
        if self._head is None or not self._subscribers:
            self._head = now
        if heartbeats and self._beats_seen is None:
            self._beats_seen = self._clock()
        # The feed may not have read up to now yet: what it reads before `now` is skipped,
        # and what it reads after `now` that was committed before (PostgreSQL) too.
        subscriber = Subscriber(actor, query, max(now, self._head), heartbeats, start)
        self._subscribers.add(subscriber)
        return subscriber

    async def _catch_up(
        self, subscriber: Subscriber, after: Position, grant: Grant | None
    ) -> AsyncGenerator[bytes, None]:
        """The subscriber's events from the database, after `after` up to where it joined."""
        last = after
        while last < subscriber.joined_at:
            if grant is not None and grant.ended:  # revoked while catching up
                raise RevokedError
            missed = await self._store.events_after(
                last, READ_BATCH, subscriber.actor, subscriber.query
            )
            missed = [h for h in missed if h.position <= subscriber.joined_at]
            if missed:
                yield b"".join(self._encode(h) for h in missed)
                last = missed[-1].position
            if len(missed) < READ_BATCH:
                return

    async def follow(
        self,
        actor: Actor,
        query: JobFilter,
        after: Position | None = None,
        heartbeats: bool = False,
        grant: Grant | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The encoded events of the actor's view under `query`: those after `after` first
        (from the database), then live ones (and, asked, heartbeats), until the caller stops,
        TooSlowError, or RevokedError once `grant` ends.
        """
        subscriber = await self._join(actor, query, heartbeats)
        if grant is not None:
            grant.on_end(subscriber.revoke)
        try:
            if after is not None and after < subscriber.joined_at:
                async for text in self._catch_up(subscriber, after, grant):
                    yield text
            last = max(after or subscriber.joined_at, subscriber.joined_at)
            # A stream that starts now leaves out what was committed before it; one that
            # resumes takes it (its catch-up stopped at `joined_at`).
            start = subscriber.start if after is None else None
            while True:
                chunk = await subscriber.next()
                if chunk.last is None:
                    yield chunk.after(None, start)
                elif chunk.last > last:
                    if text := chunk.after(last, start):
                        yield text
                    last = chunk.last
        finally:
            self._subscribers.discard(subscriber)
            if not any(s.heartbeats for s in self._subscribers):
                self._beats_seen = None

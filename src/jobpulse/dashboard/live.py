"""News of LLM usage for the dashboard's live pages. A recorded call is no history event, so
the event stream a page listens to does not carry it: beside those events, the page's
stream checks every USAGE_CHECK_S with a short read (a job's row for a job page; for the
others, whether the organization recorded any call lately, on the calls' index) and sends
`event: usage` when there is something new; the page then fetches its live region again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import timedelta
from typing import Protocol, TypeVar

from sse_starlette import ServerSentEvent

from jobpulse.domain import Actor
from jobpulse.errors import JobPulseError
from jobpulse.jobs.manager import JobManager
from jobpulse.stats.windows import Window

T = TypeVar("T")
#: Seconds between two checks for new calls.
USAGE_CHECK_S = 2.0
#: How far back a check of the organization's calls looks past the previous check: a call
#: is stamped before its write commits, and may commit after a check that missed it.
COMMIT_SLACK = timedelta(seconds=5)
#: What the page hears.
USAGE_NEWS = ServerSentEvent('{"usage": "recorded"}', event="usage")


class Watch(Protocol):
    """Says whether calls were recorded since it last looked."""

    async def changed(self) -> bool: ...


class JobCalls:
    """The calls of one job: news when its count differs from the one last seen (the
    page's, given, else the count when the stream opened).
    """

    def __init__(self, jobs: JobManager, actor: Actor, job_id: str, seen: int | None) -> None:
        self._jobs, self._actor, self._job_id, self._seen = jobs, actor, job_id, seen

    async def changed(self) -> bool:
        job = await self._jobs.get_job(self._actor, self._job_id)
        calls = int((job.usage or {}).get("calls", 0))
        news = self._seen is not None and calls != self._seen
        self._seen = calls
        return news


class RecentCalls:
    """Any call of the organization recorded since the last check (less COMMIT_SLACK, so a
    late commit is seen; a call may then be news twice or thrice, which costs a fetch).
    """

    def __init__(self, jobs: JobManager, organization_id: str) -> None:
        self._jobs, self._organization_id = jobs, organization_id
        self._checked = jobs.now()

    async def changed(self) -> bool:
        now = self._jobs.now()
        window = Window(self._checked - COMMIT_SLACK, now)
        self._checked = now
        return await self._jobs.store.has_usage(self._organization_id, window)


async def _next(events: AsyncIterator[T]) -> T:
    return await anext(events)


async def with_usage_news(
    events: AsyncIterator[T], watch: Watch, every_s: float = USAGE_CHECK_S
) -> AsyncGenerator[T | ServerSentEvent, None]:
    """`events` as they come, and USAGE_NEWS whenever `watch` sees new calls; ends with them."""
    loop = asyncio.get_running_loop()
    pending = asyncio.ensure_future(_next(events))
    check_at = loop.time() + every_s
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, check_at - loop.time()))
            if done:
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                yield item
                pending = asyncio.ensure_future(_next(events))
                continue
            check_at = loop.time() + every_s
            if await _changed(watch):
                yield USAGE_NEWS
    finally:
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await pending
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def _changed(watch: Watch) -> bool:
    """Whether `watch` saw news; a failed look (the job deleted, the database away for a
    moment) is none: the events say the rest.
    """
    try:
        return await watch.changed()
    except JobPulseError:
        return False

"""Tracked runs of async code: `async with client.track(...) as run:`, a decorator of a
coroutine function, or an async stream; a cancelled job cancels the task running it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from typing import Any

from jobpulse.errors import JobCancelledError
from jobpulse.llm import observe
from jobpulse.llm.ledger import CURRENT, AsyncLedger
from jobpulse.public import JobPublic
from jobpulse.tracking.reporting import (
    REPORT_ERRORS,
    A,
    AsyncReporter,
    Cancellable,
    P,
    R,
    T,
    forget,
    job_fields,
    logger,
    outcome,
    untracked,
)


async def track_async_stream(
    client: AsyncReporter, items: AsyncIterable[T], **options: Any
) -> AsyncIterator[T]:
    """Yield from `items` as one tracked job; the first item records the first token."""
    async with AsyncTracker(client, **options) as run:
        async for item in run.stream(items):
            yield item


class AsyncRun(Cancellable):
    """The job of a tracked async run."""

    def __init__(self, client: AsyncReporter, job: JobPublic | None) -> None:
        super().__init__(job)
        self.client = client
        #: What the run's LLM calls told it (jobpulse.llm), reported off their path.
        self.ledger = AsyncLedger(self, client)

    def observe(self, answer: A) -> A:
        """Record an OpenAI or Anthropic answer as one of the run's LLM calls (see
        `Run.observe`); the same object comes back.
        """
        return observe(answer, self.ledger)

    async def first_token(self) -> None:
        """Record the time to first token now."""
        await self._report(self.client.first_token)

    async def heartbeat(self, **progress: Any) -> None:
        """Say the run is alive, merging `progress` into the job's metadata."""
        await self._report(self.client.heartbeat, progress or None)

    async def update(self, **fields: Any) -> None:
        """Change the job (metadata merges)."""
        await self._report(self.client.update_job, **fields)

    async def stream(self, items: AsyncIterable[T]) -> AsyncIterator[T]:
        """Yield from `items`, recording the first token when the first one arrives."""
        first = True
        async for item in items:
            self.raise_if_cancelled()
            if first:
                await self.first_token()
                first = False
            yield item

    async def _report(
        self, call: Callable[..., Coroutine[Any, Any, JobPublic]], *args: Any, **kwargs: Any
    ) -> None:
        """`await call(job id, ...)`, keeping the job it answers; JobCancelled once the job is
        cancelled; any other failure logged.
        """
        self.raise_if_cancelled()
        if self.job is None:
            return
        try:
            self.job = await call(self.job.id, *args, **kwargs)
        except JobCancelledError as error:
            self._cancelled = error
            raise
        except REPORT_ERRORS as exc:
            self._failed(exc)


class AsyncTracker:
    """`async with client.track(...) as run:`, or `@client.track(...)` on a coroutine function."""

    def __init__(self, client: AsyncReporter, **options: Any) -> None:
        self._client = client
        self._options = options
        self._run: AsyncRun | None = None
        #: The heartbeat and cancel-stream tasks.
        self._watchers: list[asyncio.Task[None]] = []
        #: The task that runs the tracked code: cancelled when the job is.
        self._owner: asyncio.Task[Any] | None = None
        self._current: contextvars.Token[Any] | None = None

    async def __aenter__(self) -> AsyncRun:
        job = None
        try:
            job = await self._client.create_job(**job_fields(self._options))
        except REPORT_ERRORS as exc:
            untracked(exc)
        self._run = AsyncRun(self._client, job)
        self._current = CURRENT.set(self._run.ledger)
        self._owner = asyncio.current_task()
        if job is None:
            return self._run
        if interval := self._options.get("heartbeat_s"):
            self._watchers.append(asyncio.create_task(self._beat(interval)))
        if self._options.get("cancel_stream"):
            self._watchers.append(asyncio.create_task(self._watch()))
        return self._run

    async def _beat(self, interval: float) -> None:
        assert self._run is not None
        assert self._run.job is not None
        while True:
            await asyncio.sleep(interval)
            try:
                await self._client.heartbeat(self._run.job.id)
            except JobCancelledError as cancelled:
                self._stop(cancelled)
                return
            except REPORT_ERRORS as exc:
                logger.warning("heartbeat for %s failed: %s", self._run.id, exc)

    async def _watch(self) -> None:
        """Wait on the job's live stream for its cancellation."""
        assert self._run is not None
        assert self._run.job is not None
        try:
            cancelled = await self._client.wait_cancelled(self._run.job.id)
        except REPORT_ERRORS as exc:
            logger.warning("watching %s for a cancel failed: %s", self._run.id, exc)
            return
        if cancelled:
            self._stop(
                JobCancelledError(
                    "the job was cancelled", current_status="cancelled", requested_status=None
                )
            )

    def _stop(self, cancelled: JobCancelledError) -> None:
        """The job was cancelled: cancel the task of the tracked code (its awaits raise
        CancelledError now), once.
        """
        assert self._run is not None
        if self._run.cancelled:
            return
        self._run.learn(cancelled)
        if self._owner is not None:
            self._owner.cancel()

    async def __aexit__(self, _kind: object, error: BaseException | None, _tb: object) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        for watcher in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        assert self._run is not None
        forget(self._current)
        await self._run.ledger.settle()
        if self._run.cancelled:
            # The job has ended, cancelled through the API. If this tracker cancelled the
            # task for it, that cancellation is taken back and the block ends in JobCancelled.
            owner = self._owner
            if isinstance(error, asyncio.CancelledError) and owner is not None:
                owner.uncancel()
                raise JobCancelledError(
                    "the job was cancelled", current_status="cancelled", requested_status=None
                ) from error
            return
        if self._run.job is None:
            return  # untracked: there is no job to end
        change = self._run.ledger.final_change(error, outcome(error))
        with contextlib.suppress(JobCancelledError):  # cancelled meanwhile: it has ended
            await self._run.update(**change)

    def __call__(
        self, function: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(function)
        async def tracked(*args: P.args, **kwargs: P.kwargs) -> R:
            async with AsyncTracker(self._client, **self._options):
                return await function(*args, **kwargs)

        return tracked

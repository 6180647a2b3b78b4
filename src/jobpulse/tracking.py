"""Report a run of your own code as a job: `with client.track(...) as run:` or as a decorator.

The job is created running; `run.first_token()` (or the first item of `run.stream(...)`)
records the time to first token; optional heartbeats keep it visibly alive; leaving the block
completes it, an exception fails it (stop reason `error`, the exception in its metadata) and a
cancellation cancels it. Reporting never breaks the code being tracked: a report that fails
(jobpulse unreachable, or answering an error) is logged and the run goes on, its result or
exception untouched; a run whose job could not be created goes on untracked (`run.job` None).

A job cancelled through the API stops its run: the tracker learns of it at the next heartbeat
(or call of the run; an async tracker with `cancel_stream=True` also waits for it on the job's
live stream, and learns of it at once) and then, in `async with` or on a coroutine, cancels
the task running the tracked code, which ends with `JobCancelled`; in the sync form
`run.cancelled` turns true
and the next `run.heartbeat()`, `first_token()`, `update()`, `raise_if_cancelled()` or stream
item raises `JobCancelled`. The cancelled job gets no second terminal report.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import Any, ParamSpec, Protocol, TypeVar

import httpx

from jobpulse.errors import JobCancelledError, JobPulseError
from jobpulse.llm import observe
from jobpulse.llm.ledger import CURRENT, AsyncLedger, ThreadLedger
from jobpulse.public import JobPublic

logger = logging.getLogger("jobpulse.tracking")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
A = TypeVar("A")
#: What a failed report may raise; it is logged, never raised into the tracked code.
REPORT_ERRORS = (JobPulseError, httpx.HTTPError)
#: Raised into tracked code whose job was cancelled (the SDK's name for JobCancelledError).
JobCancelled = JobCancelledError


class Reporter(Protocol):
    """What a tracker needs of a client (JobPulse is one)."""

    def create_job(self, **fields: Any) -> JobPublic: ...

    def update_job(self, job_id: str, **fields: Any) -> JobPublic: ...

    def heartbeat(self, job_id: str, progress: dict[str, Any] | None = None) -> JobPublic: ...

    def first_token(self, job_id: str) -> JobPublic: ...

    def record_usage(self, job_id: str, **fields: Any) -> Any: ...


class AsyncReporter(Protocol):
    """What an async tracker needs of a client (AsyncJobPulse is one)."""

    async def create_job(self, **fields: Any) -> JobPublic: ...

    async def update_job(self, job_id: str, **fields: Any) -> JobPublic: ...

    async def heartbeat(self, job_id: str, progress: dict[str, Any] | None = None) -> JobPublic: ...

    async def first_token(self, job_id: str) -> JobPublic: ...

    async def wait_cancelled(self, job_id: str) -> bool: ...

    async def record_usage(self, job_id: str, **fields: Any) -> Any: ...


def outcome(error: BaseException | None) -> dict[str, Any]:
    """The final change for a run that ended with `error` (None when it succeeded)."""
    if error is None:
        return {"status": "completed"}
    if isinstance(error, KeyboardInterrupt | asyncio.CancelledError | GeneratorExit):
        return {"status": "cancelled", "stop_reason": "cancelled"}
    message = str(error)[:2000]
    return {
        "stop_reason": "error",
        "metadata": {"error_type": type(error).__qualname__, "error_message": message},
    }


def _job_fields(options: dict[str, Any]) -> dict[str, Any]:
    wanted = ("job_type", "metadata", "callback_url", "background", "timeout_s")
    fields = {name: options[name] for name in wanted if name in options}
    if "heartbeat_s" in options and "heartbeat_timeout_s" not in options:
        fields["heartbeat_timeout_s"] = round(options["heartbeat_s"] * 3, 3)
    return fields | {"status": "running"}


def _forget(current: contextvars.Token[Any] | None) -> None:
    """Leave the run's context (a generator's run may end in another context: then it stays)."""
    if current is not None:
        with contextlib.suppress(ValueError):
            CURRENT.reset(current)


def _untracked(exc: Exception) -> None:
    logger.warning("could not create the job of a run, which goes on untracked: %s", exc)


class _Cancellable:
    """A run's job and whether it has heard the job was cancelled."""

    def __init__(self, job: JobPublic | None) -> None:
        #: The job as last reported (None: it could not be created; the run is untracked).
        self.job = job
        self._cancelled: JobCancelledError | None = None

    @property
    def id(self) -> str | None:
        """The job id (None for an untracked run)."""
        return None if self.job is None else self.job.id

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled (as far as the run has heard)."""
        return self._cancelled is not None

    def raise_if_cancelled(self) -> None:
        """Raise JobCancelled if the job was cancelled."""
        if self._cancelled is not None:
            raise self._cancelled

    def learn(self, error: JobCancelledError) -> None:
        """Note that the job was cancelled (a heartbeat's answer said so)."""
        self._cancelled = error

    def _failed(self, exc: Exception) -> None:
        logger.warning("a report on %s failed: %s", self.id, exc)


class Run(_Cancellable):
    """The job of a tracked run."""

    def __init__(self, client: Reporter, job: JobPublic | None) -> None:
        super().__init__(job)
        self.client = client
        #: What the run's LLM calls told it (jobpulse.llm), reported off their path.
        self.ledger = ThreadLedger(self, client)

    def observe(self, answer: A) -> A:
        """Record an OpenAI or Anthropic answer (a stream, read as it is consumed, or a whole
        answer) as one of the run's LLM calls; the same object comes back. Not needed for the
        calls of a client given to `jobpulse.llm.instrument`.
        """
        return observe(answer, self.ledger)

    def first_token(self) -> None:
        """Record the time to first token now."""
        self._report(self.client.first_token)

    def heartbeat(self, **progress: Any) -> None:
        """Say the run is alive, merging `progress` into the job's metadata."""
        self._report(self.client.heartbeat, progress or None)

    def update(self, **fields: Any) -> None:
        """Change the job (metadata merges)."""
        self._report(self.client.update_job, **fields)

    def stream(self, items: Iterable[T]) -> Iterator[T]:
        """Yield from `items`, recording the first token when the first one arrives."""
        first = True
        for item in items:
            self.raise_if_cancelled()
            if first:
                self.first_token()
                first = False
            yield item

    def _report(self, call: Callable[..., JobPublic], *args: Any, **kwargs: Any) -> None:
        """`call(job id, ...)`, keeping the job it answers; JobCancelled once the job is
        cancelled; any other failure logged.
        """
        self.raise_if_cancelled()
        if self.job is None:
            return
        try:
            self.job = call(self.job.id, *args, **kwargs)
        except JobCancelledError as error:
            self._cancelled = error
            raise
        except REPORT_ERRORS as exc:
            self._failed(exc)


class Tracker:
    """`with client.track(job_type=...) as run:`, or `@client.track(job_type=...)`."""

    def __init__(self, client: Reporter, **options: Any) -> None:
        self._client = client
        self._options = options
        self._run: Run | None = None
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None
        self._current: contextvars.Token[Any] | None = None

    def __enter__(self) -> Run:
        job = None
        try:
            job = self._client.create_job(**_job_fields(self._options))
        except REPORT_ERRORS as exc:
            _untracked(exc)
        self._run = Run(self._client, job)
        self._current = CURRENT.set(self._run.ledger)
        if job is not None and (interval := self._options.get("heartbeat_s")):
            self._beats = threading.Thread(target=self._beat, args=(interval,), daemon=True)
            self._beats.start()
        return self._run

    def _beat(self, interval: float) -> None:
        assert self._run is not None
        assert self._run.job is not None
        while not self._stop.wait(interval):
            try:
                self._client.heartbeat(self._run.job.id)
            except JobCancelledError as cancelled:
                self._run.learn(cancelled)
                return
            except REPORT_ERRORS as exc:
                logger.warning("heartbeat for %s failed: %s", self._run.id, exc)

    def __exit__(self, _kind: object, error: BaseException | None, _tb: object) -> None:
        self._stop.set()
        if self._beats is not None:
            self._beats.join()
        assert self._run is not None
        _forget(self._current)
        self._run.ledger.settle()
        if self._run.cancelled or self._run.job is None:
            return  # the job has ended (cancelled through the API), or there is none
        change = self._run.ledger.final_change(error, outcome(error))
        with contextlib.suppress(JobCancelledError):  # cancelled meanwhile: it has ended
            self._run.update(**change)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def tracked(*args: P.args, **kwargs: P.kwargs) -> R:
            with Tracker(self._client, **self._options):
                return function(*args, **kwargs)

        return tracked


def track_stream(client: Reporter, items: Iterable[T], **options: Any) -> Iterator[T]:
    """Yield from `items` as one tracked job; the first item records the first token."""
    with Tracker(client, **options) as run:
        yield from run.stream(items)


async def track_async_stream(
    client: AsyncReporter, items: AsyncIterable[T], **options: Any
) -> AsyncIterator[T]:
    """Yield from `items` as one tracked job; the first item records the first token."""
    async with AsyncTracker(client, **options) as run:
        async for item in run.stream(items):
            yield item


class AsyncRun(_Cancellable):
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
            job = await self._client.create_job(**_job_fields(self._options))
        except REPORT_ERRORS as exc:
            _untracked(exc)
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
        _forget(self._current)
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

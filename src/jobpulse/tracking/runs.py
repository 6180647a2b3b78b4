"""Tracked runs of sync code: `with client.track(...) as run:`, a decorator, or a stream."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jobpulse.errors import JobCancelledError
from jobpulse.llm import observe
from jobpulse.llm.ledger import CURRENT, ThreadLedger
from jobpulse.public import JobPublic
from jobpulse.tracking.reporting import (
    REPORT_ERRORS,
    A,
    Cancellable,
    P,
    R,
    Reporter,
    T,
    forget,
    job_fields,
    logger,
    outcome,
    untracked,
)


class Run(Cancellable):
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
            job = self._client.create_job(**job_fields(self._options))
        except REPORT_ERRORS as exc:
            untracked(exc)
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
        forget(self._current)
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

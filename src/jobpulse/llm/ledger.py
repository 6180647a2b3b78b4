"""What a tracked run learns from its LLM calls, reported off the calls' path.

Each run has a ledger. An observed call (`Call`) tells it of its first content token, its end,
its usage and how it stopped; the ledger sends the run's first token (once) and each call's
usage record to jobpulse from a thread of its own (`ThreadLedger`, for `track`) or from tasks
on the run's event loop (`AsyncLedger`, for the async tracker), so the stream never waits on
jobpulse. A report that fails is logged, never raised. When the run ends the tracker settles
the ledger (waits, boundedly, for what is in flight) and asks it for the final change: the
stop reason of the run's last call, or `llm_api_error` when a provider's error ended the run.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from jobpulse.errors import JobCancelledError, JobPulseError
from jobpulse.llm.stops import error_stop_reason, stop_reason_of

logger = logging.getLogger("jobpulse.llm")
#: What a failed report may raise; it is logged, never raised into the tracked code.
REPORT_ERRORS = (JobPulseError, httpx.HTTPError)
#: How long a run's end waits for its reports in flight.
SETTLE_S = 5.0
#: How long the reporting thread of a run stays up with nothing to send.
IDLE_S = 1.0
#: How many errors of observed calls a ledger keeps (to know one that ends the run).
KEPT_ERRORS = 16


class Learner(Protocol):
    """What a ledger needs of its run (Run and AsyncRun are ones)."""

    @property
    def id(self) -> str | None: ...

    def learn(self, error: JobCancelledError) -> None: ...


@dataclass(slots=True)
class Call:
    """One observed LLM call: what it reported so far."""

    provider: str
    model: str | None
    ledger: Ledger
    started_ns: int = field(default_factory=time.perf_counter_ns)
    first_ns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    finish_reason: str | None = None
    #: The provider's id of its answer: a report repeated is recorded once.
    call_id: str | None = None
    ended: bool = False

    def content(self) -> None:
        """The call's first content token arrived now (later ones are ignored)."""
        if self.first_ns is None:
            self.first_ns = time.perf_counter_ns()
            try:
                self.ledger.first_content()
            except Exception:  # a jobpulse bug must not reach the caller of the LLM
                logger.exception("could not note the first token of an LLM call")

    def end(self, error: BaseException | None = None) -> None:
        """The call ended (with `error`, if it raised one); once."""
        if self.ended:
            return
        self.ended = True
        try:
            self.ledger.ended(self, error, time.perf_counter_ns())
        except Exception:  # a jobpulse bug must not reach the caller of the LLM
            logger.exception("could not note the end of an LLM call")

    def usage(self, ended_ns: int) -> dict[str, Any] | None:
        """The body of the call's usage record (None when it reported no token count)."""
        tokens = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }
        if all(count is None for count in tokens.values()):
            return None
        record: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model or "unknown",
            **{name: max(count or 0, 0) for name, count in tokens.items()},
            "duration_ns": ended_ns - self.started_ns,
        }
        if self.first_ns is not None:
            record["ttft_ns"] = self.first_ns - self.started_ns
        if self.call_id is not None:
            record["call_id"] = self.call_id
        return record


def error_code(error: BaseException) -> str | None:
    """The code (OpenAI) or type (Anthropic) of a provider's error, if it says one."""
    code = getattr(error, "code", None)
    if isinstance(code, str):
        return code
    body = getattr(error, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(inner, dict):
        found = inner.get("code") or inner.get("type")
        return found if isinstance(found, str) else None
    return None


class Ledger:
    """What a run's calls told it; subclasses send the reports."""

    def __init__(self, run: Learner) -> None:
        self.run = run
        #: (provider, finish reason) of the call that ended last with one.
        self.finish: tuple[str, str] | None = None
        self._first_sent = False
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def first_content(self) -> None:
        """A call's first content token: the run's, if it is the first of them."""
        with self._lock:
            if self._first_sent:
                return
            self._first_sent = True
        self.send("first_token", None)

    def ended(self, call: Call, error: BaseException | None, ended_ns: int) -> None:
        """A call ended: keep how, and report its usage."""
        with self._lock:
            if error is not None:
                self._errors = [*self._errors[-KEPT_ERRORS + 1 :], error]
            elif call.finish_reason is not None:
                self.finish = (call.provider, call.finish_reason)
        record = call.usage(ended_ns)
        if record is not None:
            self.send("record_usage", record)

    def final_change(self, error: BaseException | None, change: dict[str, Any]) -> dict[str, Any]:
        """The change that ends the run: `change` (the tracker's), or what the calls say."""
        if error is not None:
            if not any(error is seen for seen in self._errors):
                return change
            return {**change, "stop_reason": error_stop_reason(error_code(error)).value}
        if self.finish is None:
            return change
        provider, reason = self.finish
        metadata = {"llm_finish_reason": reason}
        stop = stop_reason_of(provider, reason)
        if stop is None:
            return {**change, "metadata": metadata}
        return {"stop_reason": stop.value, "metadata": metadata}

    def send(self, kind: str, body: dict[str, Any] | None) -> None:
        """Report `kind` ("first_token" or "record_usage") off the caller's path."""
        raise NotImplementedError


class ThreadLedger(Ledger):
    """Reports from a daemon thread, started when there is something to send."""

    def __init__(self, run: Learner, client: Any) -> None:
        super().__init__(run)
        self.client = client
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def send(self, kind: str, body: dict[str, Any] | None) -> None:
        if self.run.id is None:
            return
        with self._lock:
            self._queue.put((kind, body))
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, daemon=True)
                self._thread.start()

    def settle(self, timeout: float = SETTLE_S) -> None:
        """Wait until what was sent so far has been reported (at most `timeout` seconds)."""
        with self._lock:
            if self._thread is None:
                return
            done = threading.Event()
            self._queue.put(("settled", done))
        if not done.wait(timeout):
            logger.warning("reports of the LLM calls of %s still in flight", self.run.id)

    def _drain(self) -> None:
        while True:
            try:
                kind, body = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if kind == "settled":
                body.set()
                continue
            self._report(kind, body)

    def _report(self, kind: str, body: dict[str, Any] | None) -> None:
        job_id = self.run.id
        assert job_id is not None
        try:
            if body is None:
                getattr(self.client, kind)(job_id)
            else:
                getattr(self.client, kind)(job_id, **body)
        except JobCancelledError as cancelled:
            self.run.learn(cancelled)
        except REPORT_ERRORS as exc:
            logger.warning("a report of an LLM call of %s failed: %s", job_id, exc)


class AsyncLedger(Ledger):
    """Reports from tasks on the run's event loop (from any thread)."""

    def __init__(self, run: Learner, client: Any) -> None:
        super().__init__(run)
        self.client = client
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, kind: str, body: dict[str, Any] | None) -> None:
        if self.run.id is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._spawn(kind, body)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._spawn, kind, body)

    def _spawn(self, kind: str, body: dict[str, Any] | None) -> None:
        task = self._loop.create_task(self._report(kind, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until what was sent so far has been reported (at most SETTLE_S seconds)."""
        await asyncio.sleep(0)  # reports handed over from other threads start first
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=SETTLE_S)
        if pending:
            logger.warning("reports of the LLM calls of %s still in flight", self.run.id)

    async def _report(self, kind: str, body: dict[str, Any] | None) -> None:
        job_id = self.run.id
        assert job_id is not None
        method: Callable[..., Coroutine[Any, Any, Any]] = getattr(self.client, kind)
        try:
            await (method(job_id) if body is None else method(job_id, **body))
        except JobCancelledError as cancelled:
            self.run.learn(cancelled)
        except REPORT_ERRORS as exc:
            logger.warning("a report of an LLM call of %s failed: %s", job_id, exc)


#: The ledger of the tracked run the current code runs in (None: outside any run).
CURRENT: ContextVar[Ledger | None] = ContextVar("jobpulse_llm_ledger", default=None)

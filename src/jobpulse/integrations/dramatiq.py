"""Dramatiq: `instrument(broker, url=..., api_key=...)` reports every message as a jobpulse
job, with no change to actor code, through two broker middleware.

Sending a message reports it `pending`; a worker taking it `running`; the actor returning
`completed`; raising: a history note and `metadata.attempts` while the Retries middleware
sends it again, `failed` (stop reason `error`, the exception's type and message in metadata)
once it gives up or the exception is one the actor `throws`; a skipped message (too old for
AgeLimit, say) `cancelled`. Cancelling the job in jobpulse interrupts the actor in its worker
thread (as TimeLimit does: `JobCancelledInterrupt` is raised in the thread at its next Python
instruction, so a blocking system call finishes first) and the message is failed, never
retried; a message whose job was cancelled before it ran is interrupted as soon as it starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from dramatiq import Broker, Middleware
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.message import Message
from dramatiq.middleware import Retries
from dramatiq.middleware.threading import Interrupt, raise_thread_exception

from jobpulse.integrations.reporter import Reporter
from jobpulse.integrations.reports import Kind, Report, error_metadata

__all__ = ["JobCancelledInterrupt", "instrument"]

logger = logging.getLogger("jobpulse.integrations.dramatiq")
EXECUTOR = "dramatiq"
#: The option an instrumented publisher sets: the worker then makes the job pending too.
PUBLISHER_OPTION = "jobpulse_publisher_reports"


class JobCancelledInterrupt(Interrupt):
    """Raised in a worker thread whose message's job was cancelled in jobpulse."""


def instrument(
    broker: Broker,
    *,
    url: str,
    api_key: str,
    job_type: str | None = None,
    heartbeat_s: float | None = 10.0,
    reporter: Reporter | None = None,
) -> Reporter:
    """Report the messages `broker` sends and its workers process.

    Call it where the broker is made, before its actors run (in the module a `dramatiq`
    worker imports). `job_type` names every job (the actor's name otherwise); a worker's
    running messages get a heartbeat every `heartbeat_s`. Returns the reporter.
    """
    running = Running()
    reporter = reporter or Reporter(
        url, api_key, executor=EXECUTOR, heartbeat_s=heartbeat_s, on_cancelled=running.interrupt
    )
    retries = any(isinstance(middleware, Retries) for middleware in broker.middleware)
    tracking = Tracking(reporter, job_type, running, retried=retries)
    # Before Retries: its `after` hooks run after Retries' (they run in reverse), so a
    # failure is known to be retried or final. Running goes last: its `after` hook runs
    # first, as soon as the actor is done.
    broker.add_middleware(tracking, before=Retries) if retries else broker.add_middleware(tracking)
    broker.add_middleware(running)
    return reporter


def _report(
    kind: Kind,
    message: Message[Any] | MessageProxy,
    job_type: str | None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Report:
    announced = bool(message.options.get(PUBLISHER_OPTION))
    return Report(
        kind, message.message_id, message.actor_name, job_type, metadata or {}, reason, announced
    )


class Tracking(Middleware):
    """Reports each message's lifecycle to the reporter."""

    def __init__(
        self, reporter: Reporter, job_type: str | None, running: Running, *, retried: bool
    ) -> None:
        self.reporter = reporter
        self.job_type = job_type
        self.running = running
        #: Whether a failed message is sent again (the broker has the Retries middleware).
        self.retried = retried

    def before_enqueue(self, broker: Broker, message: Message[Any], delay: int) -> None:
        if message.options.get("retries"):  # Retries sending it again: reported as a retry
            return
        message.options[PUBLISHER_OPTION] = True  # sent with it: the worker reads it
        metadata = {"queue": q_name(message.queue_name)}
        self.reporter.report(_report(Kind.PUBLISHED, message, self.job_type, metadata))

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        # Known to run before it is reported: a job found cancelled can be interrupted.
        self.running.start(message)
        metadata = {"queue": q_name(message.queue_name), "attempts": _attempt(message)}
        self.reporter.report(_report(Kind.STARTED, message, self.job_type, metadata))

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        self.reporter.report(self._ending(message, exception))

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self.running.attempt_of(message)
        reason = "skipped by the worker"
        self.reporter.report(_report(Kind.REVOKED, message, self.job_type, reason=reason))

    def _ending(self, message: MessageProxy, exception: BaseException | None) -> Report:
        attempt = self.running.attempt_of(message)
        if exception is None:
            return _report(Kind.SUCCEEDED, message, self.job_type)
        if isinstance(exception, JobCancelledInterrupt):
            reason = "cancelled in jobpulse: interrupted"
            return _report(Kind.REVOKED, message, self.job_type, reason=reason)
        error = error_metadata(exception)
        if message.failed or not self.retried:
            return _report(Kind.FAILED, message, self.job_type, {**error, "attempts": attempt})
        reason = f"attempt {attempt} failed ({error['error_type']}: {error['error_message']})"
        metadata = {"attempts": attempt}
        return _report(Kind.RETRIED, message, self.job_type, metadata, f"{reason}; retrying")


def _attempt(message: MessageProxy) -> int:
    """Which run of the message this is (1 for the first)."""
    return int(message.options.get("retries", 0)) + 1


class Running(Middleware):
    """Knows which worker thread runs which message, to interrupt one whose job was
    cancelled, and only while its actor runs (registered by Tracking before the actor,
    forgotten by this middleware's `after` hook, the first to run after it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: message id → (the worker thread running it, the message).
        self._threads: dict[str, tuple[int, MessageProxy]] = {}
        #: message id → which run of it this is.
        self._attempts: dict[str, int] = {}

    def start(self, message: MessageProxy) -> None:
        """The calling worker thread is about to run `message`'s actor."""
        with self._lock:
            self._threads[message.message_id] = (threading.get_ident(), message)
            self._attempts[message.message_id] = _attempt(message)

    def attempt_of(self, message: MessageProxy) -> int:
        """Which run of `message` just ended (Retries may have counted it since)."""
        return self._attempts.pop(message.message_id, None) or _attempt(message)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        # An interrupt raised while this waits for the lock is raised here, inside the
        # worker's handling of the message, which then treats it as the actor's.
        with self._lock:
            self._threads.pop(message.message_id, None)

    after_skip_message: Callable[..., None] = after_process_message

    def interrupt(self, message_id: str) -> None:
        """Stop the actor running `message_id` in this process, if one is, for good."""
        with self._lock:
            running = self._threads.pop(message_id, None)
            if running is None:
                return
            thread, message = running
            message.options["max_retries"] = 0  # Retries fails it rather than sending it again
            raise_thread_exception(thread, JobCancelledInterrupt)  # type: ignore[no-untyped-call]
        logger.info("dramatiq message %s interrupted: its job was cancelled", message_id)

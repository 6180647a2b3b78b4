"""RQ: `instrument(queue_or_worker, url=..., api_key=...)` reports RQ jobs as jobpulse jobs,
with no change to task code.

On a `Queue` (the publisher), each job enqueued or scheduled is reported `pending`, and
`job.cancel()` of a job fetched or enqueued through that queue `cancelled`. On a worker (any
`rq.worker.BaseWorker`: `Worker`, `SpawnWorker`, `SimpleWorker`), the work loop reports each
job it takes `running`, then what RQ recorded when it ended: finished → `completed`, failed →
`failed` (stop reason `error`, the exception's type and message in metadata), requeued or
scheduled again by its `Retry` → a history note and `metadata.attempts`, stopped → `cancelled`.
The reports come from the worker's own process, never from the forked work horse, so they
survive the horse and a jobpulse outage alike. Cancelling the job in jobpulse stops the task:
RQ's `send_stop_job_command` (the work horse is killed; `SimpleWorker` has none to kill), or
`job.cancel()` when it has not started yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import BaseWorker

from jobpulse.integrations.reporter import Reporter
from jobpulse.integrations.reports import Kind, Report, error_metadata

__all__ = ["instrument"]

logger = logging.getLogger("jobpulse.integrations.rq")
EXECUTOR = "rq"
#: Where the work horse leaves the exception of a failed run for the worker to report.
ERROR_META = "jobpulse_error"
#: Which run of the job this is, counted by the worker.
ATTEMPTS_META = "jobpulse_attempts"
#: Set by an instrumented publisher: the worker then makes the job pending too, if first.
PUBLISHER_META = "jobpulse_publisher_reports"
#: How long a stop waits for a job that was just taken to be running in its work horse.
STOP_WAIT_S = 5.0
#: What RQ's statuses mean once a run is over.
_ENDINGS = {
    JobStatus.FINISHED: Kind.SUCCEEDED,
    JobStatus.FAILED: Kind.FAILED,
    JobStatus.STOPPED: Kind.REVOKED,
    JobStatus.CANCELED: Kind.REVOKED,
    JobStatus.QUEUED: Kind.RETRIED,
    JobStatus.SCHEDULED: Kind.RETRIED,
}


def instrument(
    target: Queue | BaseWorker,
    *,
    url: str,
    api_key: str,
    job_type: str | None = None,
    heartbeat_s: float | None = 10.0,
    reporter: Reporter | None = None,
) -> Reporter:
    """Report the jobs `target` (a Queue, or a worker before `work()`) enqueues or runs.

    `job_type` names every job (the function's dotted name otherwise); a worker's running
    jobs get a heartbeat every `heartbeat_s`. Returns the reporter (its `stats`, `flush()`).
    """
    if isinstance(target, BaseWorker):
        reporter = reporter or Reporter(
            url,
            api_key,
            executor=EXECUTOR,
            heartbeat_s=heartbeat_s,
            on_cancelled=_stopper(target.connection, target.serializer),
        )
        _instrument_worker(target, reporter, job_type)
    elif isinstance(target, Queue):
        reporter = reporter or Reporter(url, api_key, executor=EXECUTOR)
        _instrument_queue(target, reporter, job_type)
    else:
        raise TypeError(f"instrument() takes an rq Queue or worker, not {type(target).__name__}")
    return reporter


def _report(
    kind: Kind,
    job: Job,
    job_type: str | None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Report:
    name, announced = job.func_name or job.id, bool(job.meta.get(PUBLISHER_META))
    return Report(kind, job.id, name, job_type, metadata or {}, reason, announced)


def _attempt(job: Job) -> int:
    """Which run of the job this is (1 for the first, 2 for its first retry...)."""
    return int(job.meta.get(ATTEMPTS_META, 1))


def _count_attempt(job: Job) -> int:
    """Count a new run of the job in its meta (RQ counts only the retries a task asks for)."""
    attempt = int(job.meta.get(ATTEMPTS_META, 0)) + 1
    job.meta[ATTEMPTS_META] = attempt
    job.save_meta()  # type: ignore[no-untyped-call]
    return attempt


# The publisher's side.


def _instrument_queue(queue: Queue, reporter: Reporter, job_type: str | None) -> None:
    def published(job: Job) -> None:
        reporter.report(_report(Kind.PUBLISHED, job, job_type, {"queue": job.origin}))

    def reporting(original: Callable[..., Job]) -> Callable[..., Job]:
        def enqueue(job: Job, *args: Any, **kwargs: Any) -> Job:
            job.meta[PUBLISHER_META] = True  # saved with the job: the worker reads it
            enqueued = original(job, *args, **kwargs)
            published(enqueued)
            return enqueued

        return enqueue

    enqueue_many = queue.enqueue_many

    def enqueue_many_reporting(*args: Any, **kwargs: Any) -> list[Job]:
        jobs = enqueue_many(*args, **kwargs)
        for job in jobs:
            published(job)
        return jobs

    # On the instance: other queues of the process, and the worker's own, are left alone.
    queue.enqueue_job = reporting(queue.enqueue_job)  # type: ignore[method-assign]
    queue.schedule_job = reporting(queue.schedule_job)  # type: ignore[method-assign]
    queue.enqueue_many = enqueue_many_reporting  # type: ignore[method-assign]
    queue.job_class = _cancel_reporting(queue.job_class, reporter, job_type)


def _cancel_reporting(base: type[Job], reporter: Reporter, job_type: str | None) -> type[Job]:
    """A Job class whose `cancel()` also reports the job cancelled."""

    def cancel(self: Job, *args: Any, **kwargs: Any) -> dict[str, list[str]]:
        moved = base.cancel(self, *args, **kwargs)
        reporter.report(_report(Kind.REVOKED, self, job_type, reason="cancelled in RQ"))
        return moved

    return type(base.__name__, (base,), {"cancel": cancel, "__module__": base.__module__})


# The worker's side.


def _instrument_worker(worker: BaseWorker, reporter: Reporter, job_type: str | None) -> None:
    execute = worker.execute_job

    def execute_job(job: Job, queue: Queue) -> None:
        metadata = {"queue": job.origin, "attempts": _count_attempt(job), "worker": worker.name}
        reporter.report(_report(Kind.STARTED, job, job_type, metadata))
        execute(job, queue)
        try:
            reporter.report(_ending(job, job_type))
        except Exception:  # reading the job back from Redis: never a reason to stop working
            logger.exception("reporting the end of RQ job %s failed", job.id)

    # On the instance, in the worker's own process: its forked or spawned work horses run
    # the job, and the worker sees how it ended in what RQ recorded.
    worker.execute_job = execute_job  # type: ignore[method-assign]
    worker.push_exc_handler(remember_error)  # type: ignore[no-untyped-call]


def remember_error(
    job: Job,
    _type: type[BaseException] | None,
    error: BaseException | None,
    _traceback: TracebackType | None,
) -> None:
    """An RQ exception handler (run in the work horse): keep the exception's type and
    message in the job's meta, where the worker reads them.
    """
    if error is not None:
        job.meta[ERROR_META] = error_metadata(error)
        job.save_meta()  # type: ignore[no-untyped-call]


def _ending(job: Job, job_type: str | None) -> Report:
    """What became of the run that just ended, as RQ recorded it."""
    attempt = _attempt(job)
    try:
        status = job.get_status(refresh=True)
        kind = _ENDINGS.get(status, Kind.FAILED)
        if kind is Kind.SUCCEEDED:
            return _report(kind, job, job_type)
        if kind is Kind.REVOKED:
            return _report(kind, job, job_type, reason=f"{status.value} in RQ")
        error = job.get_meta(refresh=True).get(ERROR_META) or _error_of_result(job)
    except (NoSuchJobError, InvalidJobOperation):  # a finished job with result_ttl=0 is gone
        return _report(Kind.SUCCEEDED, job, job_type)
    if kind is Kind.FAILED:
        return _report(kind, job, job_type, {**error, "attempts": attempt})
    reason = f"attempt {attempt} failed ({error['error_type']}: {error['error_message']})"
    return _report(kind, job, job_type, {"attempts": attempt}, reason + "; retrying")


def _error_of_result(job: Job) -> dict[str, str]:
    """The error of a run that left no exception behind (its work horse was killed, say)."""
    result = job.latest_result()
    text = (result.exc_string or "").strip() if result is not None else ""
    return {"error_type": "WorkHorseError", "error_message": text.splitlines()[-1] if text else ""}


def _stopper(connection: Redis, serializer: Any) -> Callable[[str], None]:
    """What the reporter calls when a job's task was cancelled in jobpulse: stop it in RQ."""

    def stop(job_id: str) -> None:
        deadline = time.monotonic() + STOP_WAIT_S
        while True:
            try:
                job = Job.fetch(job_id, connection=connection, serializer=serializer)
                status, late = job.get_status(), time.monotonic() > deadline
                if status == JobStatus.STARTED and job.worker_name:
                    send_stop_job_command(connection, job_id, serializer=serializer)
                    return
                # Waiting for its retry, or still queued after the wait: it never runs again.
                if status in (JobStatus.SCHEDULED, JobStatus.DEFERRED) or (
                    status == JobStatus.QUEUED and late
                ):
                    job.cancel()
                    return
                if late or status not in (JobStatus.QUEUED, JobStatus.STARTED):
                    return  # it has ended (or never got going)
            except (NoSuchJobError, InvalidJobOperation):
                return
            time.sleep(0.05)

    def stop_soon(job_id: str) -> None:  # not on the reporter's thread: it waits
        threading.Thread(target=stop, args=(job_id,), name="jobpulse-rq-stop", daemon=True).start()

    return stop_soon

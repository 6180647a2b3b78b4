"""arq: `instrument(WorkerSettings_or_pool, url=..., api_key=...)` reports arq jobs as
jobpulse jobs, with no change to the job functions.

On the worker's settings (the class or dict given to `arq` / `run_worker`), each function is
wrapped: it reports its job `running` when it starts, `completed` when it returns, `failed`
(stop reason `error`, the exception's type and message in metadata) when it raises, and a
history note with `metadata.attempts` when it raises `Retry` (`failed` when no try is left).
An aborted job (`Job.abort()`) is reported `cancelled`; a job cut off by the worker's shutdown
that arq runs again, a retry note. Cancelling the job in jobpulse aborts it through arq
(`allow_abort_jobs` is turned on). On an `ArqRedis` pool (the publisher), `enqueue_job`
reports each job `pending`, and the `abort()` of the jobs it returns `cancelled` (also one
aborted before it ran, which no worker hook sees).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from arq.connections import ArqRedis
from arq.constants import default_queue_name
from arq.jobs import Job
from arq.worker import Function, Retry, func

from jobpulse.integrations.reporter import Reporter
from jobpulse.integrations.reports import Kind, Report, error_metadata

__all__ = ["instrument"]

logger = logging.getLogger("jobpulse.integrations.arq")
EXECUTOR = "arq"
#: arq's default number of tries of a job (Worker's `max_tries`).
DEFAULT_MAX_TRIES = 5
#: Where a function's wrapper leaves, in the job's ctx, that it was cancelled.
CANCELLED = "jobpulse_cancelled"
#: The Redis key an instrumented publisher sets for a job (arq's jobs carry nothing else):
#: its worker, reading it, makes the job pending too if its report comes first.
PUBLISHER_KEY = "jobpulse:publisher-reports:{}"
#: How long that key waits for a worker (arq's own default expiry of a job).
PUBLISHER_KEY_TTL_S = 86_400

Settings = type | MutableMapping[str, Any]
Hook = Callable[[dict[Any, Any]], Awaitable[Any]]


def instrument(
    target: Settings | ArqRedis,
    *,
    url: str,
    api_key: str,
    job_type: str | None = None,
    heartbeat_s: float | None = 10.0,
    reporter: Reporter | None = None,
) -> Reporter:
    """Report the jobs `target` enqueues (an ArqRedis pool) or runs (WorkerSettings).

    `job_type` names every job (the function's name otherwise); a worker's running jobs get
    a heartbeat every `heartbeat_s`. Returns the reporter.
    """
    if isinstance(target, ArqRedis):
        reporter = reporter or Reporter(url, api_key, executor=EXECUTOR)
        _instrument_pool(target, reporter, job_type)
        return reporter
    worker = _Worker(_read(target, "queue_name") or default_queue_name)
    reporter = reporter or Reporter(
        url, api_key, executor=EXECUTOR, heartbeat_s=heartbeat_s, on_cancelled=worker.abort
    )
    worker.instrument(target, reporter, job_type)
    return reporter


def _read(settings: Settings, name: str) -> Any:
    # arq reads a settings class's own attributes only (its __dict__), so do we.
    return settings.get(name) if isinstance(settings, MutableMapping) else vars(settings).get(name)


def _write(settings: Settings, name: str, value: Any) -> None:
    if isinstance(settings, MutableMapping):
        settings[name] = value
    else:
        setattr(settings, name, value)


# The publisher's side.


def _instrument_pool(pool: ArqRedis, reporter: Reporter, job_type: str | None) -> None:
    enqueue = pool.enqueue_job

    class ReportedJob(Job):
        """A job whose `abort()` also reports it cancelled."""

        __slots__ = ("function",)
        function: str

        async def abort(
            self,
            *,
            timeout: float | None = None,  # noqa: ASYNC109 (arq's own signature)
            poll_delay: float = 0.5,
        ) -> bool:
            reason = "aborted in arq"
            report = Report(Kind.REVOKED, self.job_id, self.function, job_type, reason=reason)
            reporter.report(report)
            return await super().abort(timeout=timeout, poll_delay=poll_delay)

    async def enqueue_job(
        function: str, *args: Any, _job_id: str | None = None, **kwargs: Any
    ) -> Job | None:
        job_id = _job_id or uuid.uuid4().hex  # arq's own default, made here to report it
        await pool.set(PUBLISHER_KEY.format(job_id), 1, ex=PUBLISHER_KEY_TTL_S)
        job = await enqueue(function, *args, _job_id=job_id, **kwargs)
        if job is None:  # a job of that id exists already (and was reported)
            return None
        queue = kwargs.get("_queue_name") or pool.default_queue_name
        reporter.report(Report(Kind.PUBLISHED, job_id, function, job_type, {"queue": queue}))
        reported = ReportedJob(job_id, pool, _queue_name=queue, _deserializer=pool.job_deserializer)
        reported.function = function
        return reported

    pool.enqueue_job = enqueue_job  # type: ignore[method-assign]


# The worker's side.


class _Worker:
    """A worker's instrumentation: its wrapped functions and hooks, and its way to abort."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self.reporter: Reporter | None = None
        self.job_type: str | None = None
        #: The worker's loop and Redis pool, known from its startup.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.redis: ArqRedis | None = None

    def instrument(self, settings: Settings, reporter: Reporter, job_type: str | None) -> None:
        self.reporter, self.job_type = reporter, job_type
        max_tries = _read(settings, "max_tries") or DEFAULT_MAX_TRIES
        functions = [func(function) for function in _read(settings, "functions") or ()]
        _write(settings, "functions", [self._wrap(f, f.max_tries or max_tries) for f in functions])
        _write(settings, "on_startup", _chain(self._started, _read(settings, "on_startup")))
        _write(settings, "after_job_end", _chain(self._ended, _read(settings, "after_job_end")))
        _write(settings, "allow_abort_jobs", True)  # how a job cancelled in jobpulse stops

    def _report(
        self,
        kind: Kind,
        ctx: dict[Any, Any],
        name: str,
        metadata: dict[str, Any] | None = None,
        reason: str | None = None,
        *,
        announced: bool = False,
    ) -> None:
        assert self.reporter is not None
        report = Report(kind, ctx["job_id"], name, self.job_type, metadata or {}, reason, announced)
        self.reporter.report(report)

    def _wrap(self, function: Function, max_tries: int) -> Function:
        run, name = function.coroutine, function.name

        async def reported(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
            attempt = int(ctx["job_try"])
            metadata = {"queue": self.queue_name, "attempts": attempt}
            announced = attempt == 1 and await _was_announced(ctx)
            self._report(Kind.STARTED, ctx, name, metadata, announced=announced)
            try:
                result = await run(ctx, *args, **kwargs)
            except Retry:
                if attempt >= max_tries:
                    error = {"error_type": "Retry", "error_message": f"{max_tries} tries used"}
                    self._report(Kind.FAILED, ctx, name, {**error, "attempts": attempt})
                else:
                    reason = f"attempt {attempt} asked for a retry"
                    self._report(Kind.RETRIED, ctx, name, {"attempts": attempt}, reason)
                raise
            except asyncio.CancelledError:
                ctx[CANCELLED] = name  # aborted, timed out or cut off: told after it ends
                raise
            except Exception as exc:
                self._report(Kind.FAILED, ctx, name, {**error_metadata(exc), "attempts": attempt})
                raise
            self._report(Kind.SUCCEEDED, ctx, name)
            return result

        return dataclasses.replace(function, coroutine=reported)

    async def _started(self, ctx: dict[Any, Any]) -> None:
        self.loop, self.redis = asyncio.get_running_loop(), ctx["redis"]

    async def _ended(self, ctx: dict[Any, Any]) -> None:
        """After arq has recorded a cancelled run: aborted, timed out or to run again."""
        name = ctx.pop(CANCELLED, None)
        if name is None or self.redis is None:
            return
        job = Job(ctx["job_id"], self.redis, _queue_name=self.queue_name)
        result = await job.result_info()
        if result is None and await self.redis.zscore(self.queue_name, ctx["job_id"]):
            reason = f"attempt {ctx['job_try']} cut off; arq runs it again"
            self._report(Kind.RETRIED, ctx, name, {"attempts": int(ctx["job_try"])}, reason)
        elif result is not None and not isinstance(result.result, asyncio.CancelledError):
            error = error_metadata(result.result)
            self._report(Kind.FAILED, ctx, name, {**error, "attempts": int(ctx["job_try"])})
        else:
            self._report(Kind.REVOKED, ctx, name, reason="aborted in arq")

    def abort(self, job_id: str) -> None:
        """What the reporter calls (on its thread) when a job was cancelled in jobpulse."""
        if self.loop is None or self.redis is None:
            return
        job = Job(job_id, self.redis, _queue_name=self.queue_name)
        asyncio.run_coroutine_threadsafe(_abort(job), self.loop)


async def _was_announced(ctx: dict[Any, Any]) -> bool:
    """Whether an instrumented publisher enqueued the job (its key is read and removed)."""
    try:
        return bool(await ctx["redis"].getdel(PUBLISHER_KEY.format(ctx["job_id"])))
    except Exception:  # Redis away: the job is made running if the worker reports first
        logger.exception("reading arq job %s's publisher mark failed", ctx["job_id"])
        return False


async def _abort(job: Job) -> None:
    """Ask arq to abort `job` (its worker cancels it at its next poll), without waiting."""
    try:
        await job.abort(timeout=0)
    except TimeoutError:
        pass
    except Exception:  # Redis away: the job's next heartbeat tries again
        logger.exception("aborting arq job %s failed", job.job_id)


def _chain(first: Hook, then: Hook | None) -> Callable[[dict[Any, Any]], Coroutine[Any, Any, None]]:
    """A hook that runs `first`, then the settings' own hook (if any)."""

    async def hook(ctx: dict[Any, Any]) -> None:
        await first(ctx)
        if then is not None:
            await then(ctx)

    return hook

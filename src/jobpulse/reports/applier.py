"""Applies the reports of one request through the JobManager: those of one idempotency key
one after another, in order, and the keys side by side, so that the writer commits the
changes of many keys together (a few write batches a request, not one a report).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from functools import partial

from jobpulse.domain import Actor, Job, JobChange, resolve_outcome
from jobpulse.errors import JobPulseError, ReadTimeoutError, TooManyRequestsError, UnavailableError
from jobpulse.jobs.manager import JobManager
from jobpulse.reports.rules import is_nothing, plan_report
from jobpulse.reports.schemas import ReportCreate, ReportResult, Unreadable
from jobpulse.schemas import ErrorDetail

logger = logging.getLogger("jobpulse.api")
#: Errors after which a report may be sent again as it is: the later reports of its key are
#: then not applied (answered with the same error), so that the key's order holds.
RETRY_LATER = (UnavailableError, TooManyRequestsError, ReadTimeoutError)


async def apply_reports(
    jobs: JobManager, actor: Actor, reports: Sequence[ReportCreate | Unreadable]
) -> list[ReportResult]:
    """Apply `reports` as `actor`; one result each, in their order."""
    results: dict[int, ReportResult] = {}
    by_key: dict[str, list[tuple[int, ReportCreate]]] = {}
    for index, report in enumerate(reports):
        if isinstance(report, Unreadable):
            error = ErrorDetail(
                code="validation_error", message=report.message, errors=report.errors
            )
            results[index] = ReportResult(
                idempotency_key=report.idempotency_key, job_id=None, error=error
            )
        else:
            by_key.setdefault(report.idempotency_key, []).append((index, report))
    await asyncio.gather(*(_apply_key(jobs, actor, keyed, results) for keyed in by_key.values()))
    return [results[index] for index in range(len(reports))]


async def _apply_key(
    jobs: JobManager,
    actor: Actor,
    reports: list[tuple[int, ReportCreate]],
    results: dict[int, ReportResult],
) -> None:
    """Apply the reports of one key in order, each answered in `results`."""
    job: Job | None = None  # as the last report left it; None when not known for sure
    job_id: str | None = None
    stopped: ErrorDetail | None = None
    for index, report in reports:
        key = report.idempotency_key
        if stopped is not None:
            results[index] = ReportResult(idempotency_key=key, job_id=job_id, error=stopped)
            continue
        try:
            change = await _checked(jobs, report)
            job = job or await jobs.create_job(
                actor, **report.job.model_dump(), idempotency_key=key
            )
            job_id = job.id
            job = await _apply(jobs, actor, report, change, job)
        except JobPulseError as exc:
            error = ErrorDetail(code=exc.code, message=exc.message, **exc.details)
            stopped = error if isinstance(exc, RETRY_LATER) else None
        except Exception as exc:  # a bug: logged with an id, never the others' failure
            error = stopped = _unexpected(exc)
        else:
            results[index] = ReportResult(
                idempotency_key=key, job_id=job.id, status=job.status.value
            )
            continue
        job = None
        results[index] = ReportResult(idempotency_key=key, job_id=job_id, error=error)


async def _checked(jobs: JobManager, report: ReportCreate) -> JobChange | None:
    """The change `report` asks for, checked before its job is made (a refused report makes
    nothing).
    """
    if report.update is None:
        return None
    change = await jobs.check_change(**report.update.model_dump(exclude_unset=True))
    resolve_outcome(change.status, change.stop_reason)  # a contradiction: refused now
    return change


async def _apply(
    jobs: JobManager, actor: Actor, report: ReportCreate, change: JobChange | None, job: Job
) -> Job:
    """Apply `report` (its `change`) to `job`; the job after."""
    if report.heartbeat is not None:
        return await jobs.heartbeat(actor, job.id, report.heartbeat.progress)
    if change is None:
        return job
    planner = partial(plan_report, change=change, now=jobs.now(), actor=actor.user_id)
    if is_nothing(planner(job)):  # the job as last seen holds it all already
        return job
    return await jobs.apply(actor, job.id, planner)


def _unexpected(exc: Exception) -> ErrorDetail:
    correlation_id = uuid.uuid4().hex
    logger.error("unhandled error %s on a report", correlation_id, exc_info=exc)
    return ErrorDetail(
        code="internal_error", message="internal server error", correlation_id=correlation_id
    )

"""LLM batch jobs as ordinary jobs: what a provider's answer means for the job that follows
its batch. Pure: the poller (batches/poller.py) does the I/O and passes the clock.

A job of type `llm_batch` names its batch in `metadata.provider` and `metadata.batch_id`.
Each poll reads the batch as a `Snapshot` (batches/answers.py); `plan_observed` turns it into
the job's change (request counts and progress merged into metadata, the provider's end mapped
to a terminal status with a stop reason), `plan_failed` records a poll that got no usable
answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeGuard

from jobpulse.domain import (
    TERMINAL,
    Job,
    JobChange,
    JobEvent,
    JobStatus,
    Plan,
    StopReason,
    plan_change,
)
from jobpulse.errors import ValidationError

#: The job type the poller follows.
BATCH_JOB_TYPE = "llm_batch"
#: The actor named in the history of what the poller changes.
POLLER = "batch-poller"
#: The longest batch id taken (Anthropic's and OpenAI's are about 30 characters).
BATCH_ID_MAX = 128
#: Letters, digits, `_` and `-`: what the providers' ids are made of (msgbatch_…, batch_…).
_BATCH_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{BATCH_ID_MAX}}}", re.ASCII)
#: Error messages from a batch's results kept on its job, and the length of each.
ERRORS_KEPT = 5
ERROR_CHARS = 300


class Provider(StrEnum):
    """The batch APIs jobpulse speaks."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"


@dataclass(frozen=True, slots=True)
class BatchRef:
    """Which provider batch a job follows."""

    provider: Provider
    batch_id: str


def batch_ref(metadata: Mapping[str, Any]) -> BatchRef:
    """The batch an `llm_batch` job's metadata names; ValidationError if it names none."""
    provider = metadata.get("provider")
    if provider not in tuple(Provider):
        choices = ", ".join(p.value for p in Provider)
        raise ValidationError(f"an {BATCH_JOB_TYPE} job needs metadata.provider: one of {choices}")
    batch_id = metadata.get("batch_id")
    if not is_batch_id(batch_id):
        raise ValidationError(
            f"an {BATCH_JOB_TYPE} job needs metadata.batch_id: the provider's batch id "
            f"(like msgbatch_01Hk… or batch_abc123), 1 to {BATCH_ID_MAX} letters, digits, "
            "'_' or '-'"
        )
    return BatchRef(Provider(provider), batch_id)


def is_batch_id(value: object) -> TypeGuard[str]:
    """Whether `value` has the syntax of a provider's batch id: a single path segment that
    names nothing else (never `.` or `..`, no `/`, `?`, `%`).
    """
    return isinstance(value, str) and _BATCH_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A batch as its provider described it on one poll."""

    provider_status: str
    #: The job status the batch's end means; None while the batch runs.
    outcome: JobStatus | None
    counts: dict[str, int]
    done: int
    total: int
    #: Where its per-request outcomes are: results_url, output_file_id, error_file_id.
    files: dict[str, str] = field(default_factory=dict)
    expires_at: str | None = None
    #: Why it ended, for the history (None while it runs).
    reason: str | None = None

    @property
    def ended(self) -> bool:
        """Whether the provider has finished with the batch."""
        return self.outcome is not None

    def metadata(self) -> dict[str, Any]:
        """What this poll puts in the job's metadata."""
        return {
            "provider_status": self.provider_status,
            "request_counts": self.counts,
            "progress": {"done": self.done, "total": self.total},
            **self.files,
            "expires_at": self.expires_at,
        }


#: The stop reason that says why a batch's job ended with each status.
STOP_REASONS = {
    JobStatus.COMPLETED: StopReason.END_TURN,
    JobStatus.FAILED: StopReason.LLM_API_ERROR,
    JobStatus.CANCELLED: StopReason.CANCELLED,
    JobStatus.EXPIRED: StopReason.TIMEOUT,
}


def storable(text: str, limit: int = 2048) -> str:
    """Provider text as the JSON policy stores it: at most `limit` characters, no NUL, no lone
    surrogate (a provider's answer is not trusted to hold to it).
    """
    cut = text[:limit].replace("\x00", "")
    return cut.encode("utf-8", "replace").decode("utf-8")


def lapsed(expires_at: object, before: datetime | None) -> bool:
    """Whether a batch's provider expiry, as stored in its job's metadata, is before `before`
    (an expiry that is missing or not a timestamp never is).
    """
    if before is None or not isinstance(expires_at, str):
        return False
    try:
        at = datetime.fromisoformat(expires_at)
    except ValueError:
        return False
    return (at if at.tzinfo else at.replace(tzinfo=UTC)) < before


def _lapse(job: Job, expires_at: object, why: str, now: datetime) -> Plan:
    """Expire a job whose batch outlived its provider expiry by the grace period."""
    reason = f"batch {job.metadata.get('batch_id')} passed its provider expiry {expires_at}: {why}"
    change = JobChange(
        status=JobStatus.EXPIRED,
        stop_reason=StopReason.TIMEOUT,
        metadata={"last_poll_error": storable(reason, ERROR_CHARS)},
        reason=storable(reason, ERROR_CHARS),
    )
    return plan_change(job, change, now, POLLER)


def plan_observed(
    job: Job,
    snapshot: Snapshot,
    summary: dict[str, Any] | None,
    now: datetime,
    lapsed_before: datetime | None = None,
) -> Plan:
    """The change one successful poll makes: what changed merged into metadata, a created or
    pending job moved to running, and the batch's end applied to a job still active (a job
    already ended, as one cancelled through jobpulse, only gets the final counts). A batch
    still running at its provider with an expiry before `lapsed_before` expires its job.
    """
    expires_at = snapshot.expires_at or job.metadata.get("expires_at")
    if job.status not in TERMINAL and not snapshot.ended and lapsed(expires_at, lapsed_before):
        return _lapse(job, expires_at, f"still {snapshot.provider_status} there", now)
    observed = snapshot.metadata() | {"last_poll_error": None}
    if summary is not None:
        observed["results"] = summary
    patch = {key: value for key, value in observed.items() if job.metadata.get(key) != value}
    status = None
    if job.status not in TERMINAL:
        if snapshot.outcome is not None:
            status = snapshot.outcome
        elif job.status != JobStatus.RUNNING:
            status = JobStatus.RUNNING
    if status is None and not patch:
        return Plan(expected=job.status)
    change = JobChange(
        status=status,
        stop_reason=STOP_REASONS.get(status) if status is not None else None,
        metadata=patch or None,
        reason=snapshot.reason if status in TERMINAL else None,
    )
    return plan_change(job, change, now, POLLER)


def plan_failed(
    job: Job,
    message: str,
    now: datetime,
    give_up: bool = False,
    lapsed_before: datetime | None = None,
) -> Plan:
    """A poll without a usable answer: `metadata.last_poll_error` and a history note when
    the error is new; the status stays, unless `give_up` (the batch has been unknown too
    long) fails a job still active, or the batch's provider expiry is before
    `lapsed_before`, which expires it.
    """
    expires_at = job.metadata.get("expires_at")
    if job.status not in TERMINAL and not give_up and lapsed(expires_at, lapsed_before):
        return _lapse(job, expires_at, f"no answer since ({message})", now)
    if give_up and job.status not in TERMINAL:
        change = JobChange(
            status=JobStatus.FAILED,
            stop_reason=StopReason.ERROR,
            metadata={"last_poll_error": message},
            reason=message,
        )
        return plan_change(job, change, now, POLLER)
    if job.metadata.get("last_poll_error") == message:
        return Plan(expected=job.status)
    plan = plan_change(job, JobChange(metadata={"last_poll_error": message}), now, POLLER)
    note = JobEvent(
        job_id=job.id,
        from_status=job.status,
        to_status=job.status,
        at=now,
        reason=f"batch poll failed: {message}",
        actor=POLLER,
    )
    return Plan(expected=plan.expected, values=plan.values, event=note, error=plan.error)


def keeps_following(job: Job, ended: bool, lapsed_before: datetime | None = None) -> bool:
    """Whether the poller polls this batch again: until the provider ends it or its expiry
    is before `lapsed_before`, unless the job was ended some other way than a cancel (a
    cancelled job is followed to the batch's end).
    """
    if ended or lapsed(job.metadata.get("expires_at"), lapsed_before):
        return False
    return job.status not in TERMINAL or job.status == JobStatus.CANCELLED


def gave_up(not_found_since: datetime | None, now: datetime, limit_s: float) -> bool:
    """Whether a batch unknown to its provider since `not_found_since` has been so too long."""
    return not_found_since is not None and now - not_found_since >= timedelta(seconds=limit_s)

"""What the sweeper does to a job, as pure decisions: deadlines, missed heartbeats, and jobs
left unchanged too long (stale). The sweeper (sweeper/loop.py, storage/sweeps.py) finds
candidates and applies these plans through the same compare-and-set path as every other change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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

#: Who the sweeper's changes are attributed to in the history.
SWEEPER = "jobpulse:sweeper"


@dataclass(frozen=True, slots=True)
class StaleLimits:
    """Seconds a job may go unchanged in a status (no transition, heartbeat or update)
    before the sweeper flags it stuck; None never. Running jobs with a heartbeat timeout
    follow that instead.
    """

    created_s: float | None = None
    pending_s: float | None = None
    running_s: float | None = None
    #: Expire a flagged job (stop reason `timeout`) once it stays unchanged a period more.
    expire: bool = False

    def of(self, job: Job) -> float | None:
        """The limit for `job` as it is now: its own `stale_after_s`, or its status's."""
        if job.stale_after_s is not None:
            return job.stale_after_s
        if job.status == JobStatus.CREATED:
            return self.created_s
        if job.status == JobStatus.PENDING:
            return self.pending_s
        if job.status == JobStatus.RUNNING and job.heartbeat_timeout_s is None:
            return self.running_s
        return None


def plan_sweep(job: Job, now: datetime, stale: StaleLimits | None = None) -> Plan:
    """What the sweeper does to `job` at `now`: expire it past its deadline; flag a running job
    silent for its heartbeat timeout as stuck, and expire it when still silent a period later;
    flag a job unchanged past its `stale` limit (and expire it a period later if so told).
    """
    nothing = Plan(expected=job.status)
    if job.status in TERMINAL:
        return nothing
    if job.deadline_at is not None and job.deadline_at <= now:
        change = JobChange(stop_reason=StopReason.TIMEOUT, reason="deadline passed")
        return plan_change(job, change, now, SWEEPER)
    if job.status != JobStatus.RUNNING or job.heartbeat_timeout_s is None:
        return _plan_stale(job, now, stale or StaleLimits())
    if job.stale_after_s is not None and job.stuck_since is None:
        # A job's own limit holds beside its heartbeat timeout: whichever comes first.
        stale_plan = _plan_stale(job, now, stale or StaleLimits())
        if stale_plan.event is not None:
            return stale_plan
    period = timedelta(seconds=job.heartbeat_timeout_s)
    if job.stuck_since is not None:
        if now - job.stuck_since < period:
            return nothing
        change = JobChange(stop_reason=StopReason.HEARTBEAT_LOST, reason="no heartbeat after stuck")
        return plan_change(job, change, now, SWEEPER)
    beats = [moment for moment in (job.started_at, job.heartbeat_at) if moment is not None]
    if not beats or now - max(beats) < period:
        return nothing
    return _flag_stuck(job, now, f"stuck: no heartbeat for {job.heartbeat_timeout_s:g}s")


def _flag_stuck(job: Job, now: datetime, reason: str) -> Plan:
    """Mark `job` stuck since `now`, with an event saying why (the status stays)."""
    event = JobEvent(
        job_id=job.id,
        from_status=job.status,
        to_status=job.status,
        at=now,
        reason=reason,
        actor=SWEEPER,
    )
    return Plan(expected=job.status, values={"stuck_since": now, "updated_at": now}, event=event)


def _plan_stale(job: Job, now: datetime, stale: StaleLimits) -> Plan:
    limit = stale.of(job)
    if limit is None:
        return Plan(expected=job.status)
    period = timedelta(seconds=limit)
    if job.stuck_since is not None:
        if not stale.expire or now - job.stuck_since < period:
            return Plan(expected=job.status)
        reason = f"stale: {job.status} and unchanged for {2 * limit:g}s"
        change = JobChange(stop_reason=StopReason.TIMEOUT, reason=reason)
        return plan_change(job, change, now, SWEEPER)
    if now - job.updated_at < period:
        return Plan(expected=job.status)
    return _flag_stuck(job, now, f"stuck: {job.status} and unchanged for {limit:g}s")

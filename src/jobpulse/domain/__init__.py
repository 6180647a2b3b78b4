"""The job state machine and the rules around it, as data plus pure functions.

Nothing here does I/O or reads the clock: callers pass `now`. Storage asks `plan_*` what
to write for a job it has locked, and writes exactly that. `rules` holds the statuses, stop
reasons and checks; `records` the domain's types; `planning` the plans.
"""

from __future__ import annotations

from jobpulse.domain.planning import (
    Plan,
    check_active,
    plan_change,
    plan_first_token,
    plan_heartbeat,
)
from jobpulse.domain.records import Actor, Job, JobChange, JobEvent, OutboxMessage
from jobpulse.domain.rules import (
    ACTIVE,
    HEARTBEAT_TIMEOUT_MAX_S,
    INITIAL,
    STOP_REASON_STATUS,
    TERMINAL,
    TIMEOUT_MAX_S,
    TRANSITIONS,
    JobStatus,
    StopReason,
    allowed_sources,
    can_transition,
    check_duration,
    check_metadata,
    check_transition,
    elapsed_ns,
    merge_metadata,
    parse_status,
    parse_stop_reason,
    resolve_outcome,
    to_utc,
)

__all__ = [
    "ACTIVE",
    "HEARTBEAT_TIMEOUT_MAX_S",
    "INITIAL",
    "STOP_REASON_STATUS",
    "TERMINAL",
    "TIMEOUT_MAX_S",
    "TRANSITIONS",
    "Actor",
    "Job",
    "JobChange",
    "JobEvent",
    "JobStatus",
    "OutboxMessage",
    "Plan",
    "StopReason",
    "allowed_sources",
    "can_transition",
    "check_active",
    "check_duration",
    "check_metadata",
    "check_transition",
    "elapsed_ns",
    "merge_metadata",
    "parse_status",
    "parse_stop_reason",
    "plan_change",
    "plan_first_token",
    "plan_heartbeat",
    "resolve_outcome",
    "to_utc",
]

"""The sweeper's queries: jobs past their deadline, running jobs that may have gone silent,
jobs unchanged for longer than their status allows.

Candidates are locked with FOR UPDATE SKIP LOCKED, so sweepers on several replicas split the
work instead of racing for it; each is then changed through the same planned,
compare-and-set path as any other write, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    func,
    or_,
    select,
)

from jobpulse.domain import ACTIVE, Actor, Job, JobStatus, Plan
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.tables import jobs
from jobpulse.storage.transitions import apply_plan
from jobpulse.sweeper.rules import SWEEPER, StaleLimits


def _past_deadline(now: datetime, limit: int) -> Select[Any]:
    return (
        select(jobs.c.id, jobs.c.organization_id)
        .where(
            jobs.c.deadline_at.is_not(None),
            jobs.c.completed_at.is_(None),  # the partial index's condition
            jobs.c.deadline_at <= now,
            jobs.c.status.in_(sorted(ACTIVE)),
        )
        .order_by(jobs.c.deadline_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _watched(limit: int) -> Select[Any]:
    """Running jobs with a heartbeat timeout, the longest silent first."""
    last_sign = func.coalesce(jobs.c.stuck_since, jobs.c.heartbeat_at, jobs.c.started_at)
    return (
        select(jobs.c.id, jobs.c.organization_id)
        .where(
            jobs.c.status == JobStatus.RUNNING,
            jobs.c.heartbeat_timeout_s.is_not(None),
            jobs.c.completed_at.is_(None),  # with the line above, the partial index's condition
        )
        .order_by(last_sign)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _past(dialect: Dialect, moment: ColumnElement[Any], now: datetime) -> ColumnElement[bool]:
    """`moment` plus the job's own `stale_after_s` is not later than `now`."""
    return dialect.is_past(moment, jobs.c.stale_after_s, now)


def _stale(dialect: Dialect, now: datetime, stale: StaleLimits, limit: int) -> Select[Any]:
    """Active jobs unchanged past their own limit or their status's (and, when stale jobs
    expire, flagged ones due to), on partial indexes of active jobs.
    """
    watched_running = jobs.c.heartbeat_timeout_s.is_not(None)
    limits = (
        (JobStatus.CREATED, stale.created_s, None),
        (JobStatus.PENDING, stale.pending_s, None),
        (JobStatus.RUNNING, stale.running_s, watched_running),
    )
    own = jobs.c.stale_after_s.is_not(None)
    flag: ColumnElement[bool] = jobs.c.stuck_since.is_(None)
    if stale.expire:
        flag = or_(flag, _past(dialect, jobs.c.stuck_since, now))
    clauses: list[ColumnElement[bool]] = [and_(own, _past(dialect, jobs.c.updated_at, now), flag)]
    for status, seconds, excluded in limits:
        if seconds is None:
            continue
        cutoff = now - timedelta(seconds=seconds)
        flag = jobs.c.stuck_since.is_(None)
        if stale.expire:
            flag = or_(flag, jobs.c.stuck_since <= cutoff)
        clause = and_(jobs.c.status == status, jobs.c.updated_at <= cutoff, flag, ~own)
        clauses.append(clause if excluded is None else and_(clause, ~excluded))
    return (
        select(jobs.c.id, jobs.c.organization_id)
        .where(jobs.c.completed_at.is_(None), or_(*clauses))
        .order_by(jobs.c.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def sweep(
    connection: Connection,
    now: datetime,
    planner: Callable[[Job], Plan],
    limit: int,
    stale: StaleLimits | None = None,
) -> list[tuple[Job, Plan]]:
    """Apply `planner` to every candidate; the changes that did something."""
    statements = [_past_deadline(now, limit), _watched(limit)]
    # Without stale limits, the jobs' own `stale_after_s` still hold.
    statements.append(_stale(dialect_of(connection), now, stale or StaleLimits(), limit))
    candidates = {
        row.id: row.organization_id
        for statement in statements
        for row in connection.execute(statement)
    }
    done = []
    for job_id, organization in candidates.items():
        sweeper = Actor(organization, SWEEPER, is_admin=True)
        job, plan = apply_plan(connection, sweeper, job_id, planner)
        if plan.event is not None:
            done.append((job, plan))
    return done

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

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select

from jobpulse.domain import ACTIVE, Actor, Job, JobStatus, Plan
from jobpulse.storage.repository import apply_plan
from jobpulse.storage.tables import jobs
from jobpulse.sweeping import SWEEPER, StaleLimits


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
        .where(jobs.c.status == JobStatus.RUNNING, jobs.c.heartbeat_timeout_s.is_not(None))
        .order_by(last_sign)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _stale(now: datetime, stale: StaleLimits, limit: int) -> Select[Any] | None:
    """Active jobs unchanged past their status's limit (and, when stale jobs expire, flagged
    ones due to), on the partial index of active jobs by (status, updated_at).
    """
    watched_running = jobs.c.heartbeat_timeout_s.is_not(None)
    limits = (
        (JobStatus.CREATED, stale.created_s, None),
        (JobStatus.PENDING, stale.pending_s, None),
        (JobStatus.RUNNING, stale.running_s, watched_running),
    )
    clauses: list[ColumnElement[bool]] = []
    for status, seconds, excluded in limits:
        if seconds is None:
            continue
        cutoff = now - timedelta(seconds=seconds)
        flag: ColumnElement[bool] = jobs.c.stuck_since.is_(None)
        if stale.expire:
            flag = or_(flag, jobs.c.stuck_since <= cutoff)
        clause = and_(jobs.c.status == status, jobs.c.updated_at <= cutoff, flag)
        clauses.append(clause if excluded is None else and_(clause, ~excluded))
    if not clauses:
        return None
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
    if stale is not None and (found := _stale(now, stale, limit)) is not None:
        statements.append(found)
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

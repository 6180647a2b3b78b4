"""The sweeper's queries: jobs past their deadline, running jobs that may have gone silent.

Candidates are locked with FOR UPDATE SKIP LOCKED, so sweepers on several replicas split the
work instead of racing for it; each is then changed through the same planned,
compare-and-set path as any other write, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from jobpulse.domain import ACTIVE, SWEEPER, Actor, Job, JobStatus, Plan
from jobpulse.storage.repository import apply_plan
from jobpulse.storage.tables import jobs


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


def sweep(
    connection: Connection, now: datetime, planner: Callable[[Job], Plan], limit: int
) -> list[tuple[Job, Plan]]:
    """Apply `planner` to every candidate; the changes that did something."""
    candidates = {
        row.id: row.organization_id
        for statement in (_past_deadline(now, limit), _watched(limit))
        for row in connection.execute(statement)
    }
    done = []
    for job_id, organization in candidates.items():
        sweeper = Actor(organization, SWEEPER, is_admin=True)
        job, plan = apply_plan(connection, sweeper, job_id, planner)
        if plan.event is not None:
            done.append((job, plan))
    return done

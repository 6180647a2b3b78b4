"""Whole-database figures for the metrics gauges."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from jobpulse.domain import ACTIVE, JobStatus
from jobpulse.metrics import Gauges
from jobpulse.storage.batches import followed
from jobpulse.storage.outbox import pending_count
from jobpulse.storage.tables import jobs


def gauges(connection: Connection) -> Gauges:
    """Active jobs by status, stuck jobs, webhooks waiting to be delivered, batches followed."""
    active = dict.fromkeys(sorted(ACTIVE), 0)
    rows = connection.execute(
        select(jobs.c.status, func.count())
        .where(jobs.c.status.in_(sorted(ACTIVE)))
        .group_by(jobs.c.status)
    )
    for status, number in rows:
        active[JobStatus(status)] = number
    stuck = connection.execute(
        select(func.count()).where(
            jobs.c.stuck_since.is_not(None), jobs.c.status.in_(sorted(ACTIVE))
        )
    ).scalar_one()
    return Gauges(active, int(stuck), pending_count(connection), followed(connection))

"""The steps of jobs: recorded once per step id, each with its webhook queued alongside."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from jobpulse.domain import OutboxMessage
from jobpulse.storage.outbox import insert_messages
from jobpulse.storage.tables import job_steps


def _find(connection: Connection, job_id: str, step_id: str) -> dict[str, Any] | None:
    row = connection.execute(
        select(job_steps).where(job_steps.c.job_id == job_id, job_steps.c.step_id == step_id)
    ).first()
    return None if row is None else _public(row._mapping)


def _public(row: Any) -> dict[str, Any]:
    return {name: row[name] for name in ("step_id", "job_id", "status", "metadata", "created_at")}


def record_step(
    connection: Connection, job_id: str, step: dict[str, Any], message: OutboxMessage | None
) -> dict[str, Any]:
    """Store the step (`step_id`, `status`, `metadata`, `created_at`) and queue its webhook;
    a step id seen before returns the first record.
    """
    earlier = _find(connection, job_id, step["step_id"])
    if earlier is not None:
        return earlier
    values = {"job_id": job_id, **step}
    connection.execute(job_steps.insert(), values)
    if message is not None:
        insert_messages(connection, [message])
    return values


def list_steps(connection: Connection, job_id: str) -> list[dict[str, Any]]:
    """The job's steps, in the order they were recorded."""
    rows = connection.execute(
        select(job_steps).where(job_steps.c.job_id == job_id).order_by(job_steps.c.id)
    )
    return [_public(row._mapping) for row in rows]

"""The steps a job reports (`POST /v1/jobs/{id}/steps`): checked, stored once per step id,
each with its step-complete webhook when one is configured.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobpulse.domain import Actor, check_metadata
from jobpulse.errors import ValidationError
from jobpulse.jobs.checks import printable
from jobpulse.storage.store import JobStore
from jobpulse.webhooks import payload

#: What a step can report.
STEP_STATUSES = ("success", "failed", "cancelled")


async def record_step(
    store: JobStore,
    actor: Actor,
    job_id: str,
    *,
    status: str,
    step_id: str | None,
    metadata: Mapping[str, Any] | None,
    now: datetime,
    webhook: str | None,
) -> tuple[dict[str, Any], bool]:
    """Record a step of the job, queueing the step-complete webhook to `webhook` (once per
    step id); the step, and whether a webhook was queued.
    """
    if status not in STEP_STATUSES:
        raise ValidationError(f"step status must be one of {', '.join(STEP_STATUSES)}")
    step_id = step_id or f"step-{uuid.uuid4()}"
    printable("step_id", step_id)
    details = check_metadata(metadata if metadata is not None else {})
    message = None
    if webhook:
        message = payload.step(webhook, job_id, step_id, status, details, now)
    record = {"step_id": step_id, "status": status, "metadata": details, "created_at": now}
    step = await store.record_step(actor, job_id, record, message)
    return step, message is not None


async def list_steps(store: JobStore, actor: Actor, job_id: str) -> list[dict[str, Any]]:
    """The job's steps, oldest first."""
    return await store.list_steps(actor, job_id)

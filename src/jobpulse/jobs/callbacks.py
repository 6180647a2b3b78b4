"""A job's webhooks: the callback a change that ends the job queues, the stuck alert the
sweeper's flag queues (both planned with the change, written in its transaction), and the
delivery attempts a caller lists or re-sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context

from jobpulse.domain import Actor, Job, Plan
from jobpulse.storage.store import JobStore
from jobpulse.telemetry import trace_headers
from jobpulse.webhooks import payload


def with_callback(
    planner: Callable[[Job], Plan], now: datetime, trace: otel_context.Context, job: Job
) -> Plan:
    """`planner`'s plan, plus the job's callback when the plan ends a job that has one."""
    plan = planner(job)
    if not plan.ends_job:
        return plan
    ended = job.changed(plan.values)
    if ended.callback_url is None:
        return plan
    message = replace(payload.callback(ended, now), trace_context=trace_headers(trace))
    return replace(plan, outbox=(*plan.outbox, message))


def with_stuck_alert(planner: Callable[[Job], Plan], url: str | None, job: Job) -> Plan:
    """`planner`'s plan, plus a `job.stuck` alert when it flags the job stuck."""
    plan = planner(job)
    flagged = plan.values.get("stuck_since")
    if url is None or flagged is None:
        return plan
    data = {
        "job_id": job.id,
        "job_type": job.job_type,
        "organization_id": job.organization_id,
        "stuck_since": payload.timestamp(flagged),
        "heartbeat_timeout_s": job.heartbeat_timeout_s,
    }
    return replace(
        plan, outbox=(*plan.outbox, payload.alert(url, payload.JOB_STUCK, data, flagged))
    )


async def list_callbacks(store: JobStore, actor: Actor, job_id: str) -> list[dict[str, Any]]:
    """Every delivery attempt of the job's webhooks, oldest first."""
    return await store.list_attempts(actor, job_id)


async def retry_callback(store: JobStore, actor: Actor, job_id: str, now: datetime) -> str:
    """Make the job's callback due again, with the same webhook-id (which it returns)."""
    return await store.requeue_callback(actor, job_id, now)

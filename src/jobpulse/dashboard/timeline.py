"""A job's timeline: creation, start, first token, last heartbeat, steps, status changes,
end and callback attempts, placed on one time axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from jobpulse.dashboard.pages import SignedIn, _jobs, _render
from jobpulse.domain import Job, JobEvent

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Mark:
    """One moment of the job: when, what kind, what to say."""

    at: datetime
    kind: str
    label: str
    #: Where on the axis, in percent from its start.
    offset: float = 0.0


def _event_mark(event: JobEvent) -> Mark:
    if event.from_status is None:
        return Mark(event.at, "created", f"created as {event.to_status.value}")
    if not event.applied:
        return Mark(event.at, "rejected", f"refused: {event.to_status.value}")
    if event.from_status == event.to_status:
        return Mark(event.at, "note", event.reason or "note")
    reason = f" ({event.stop_reason.value})" if event.stop_reason else ""
    return Mark(event.at, event.to_status.value, f"{event.to_status.value}{reason}")


def marks(
    job: Job,
    events: list[JobEvent],
    steps: list[dict[str, Any]],
    attempts: list[dict[str, Any]],
) -> list[Mark]:
    """Every moment of the job, oldest first, each placed on an axis from the first to the
    last of them.
    """
    found = [_event_mark(event) for event in events]
    if job.started_at is not None and job.ttft_ns is not None:
        first = job.started_at + timedelta(microseconds=job.ttft_ns / 1000)
        found.append(Mark(first, "token", "first token"))
    if job.heartbeat_at is not None:
        found.append(Mark(job.heartbeat_at, "heartbeat", "last heartbeat"))
    for step in steps:
        found.append(Mark(step["created_at"], "step", f"step {step['step_id']}: {step['status']}"))
    for attempt in attempts:
        answer = attempt.get("status_code") or attempt.get("error") or "no answer"
        label = (
            f"{attempt['event_type']} attempt {attempt['attempt']}: {answer} ({attempt['state']})"
        )
        found.append(Mark(attempt["attempted_at"], "callback", label))
    found.sort(key=lambda mark: mark.at)
    if not found:
        return []
    start, end = found[0].at, found[-1].at
    span = (end - start).total_seconds() or 1.0
    return [
        Mark(m.at, m.kind, m.label, round(100 * (m.at - start).total_seconds() / span, 2))
        for m in found
    ]


def since(mark: Mark, start: datetime) -> str:
    """'+1.25 s' from the start of the axis."""
    seconds = (mark.at - start).total_seconds()
    if seconds < 1:
        return f"+{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"+{seconds:.2f} s"
    return f"+{seconds / 60:.1f} min"


@router.get("/jobs/{job_id}/timeline")
async def timeline(request: Request, job_id: str, actor: SignedIn) -> Response:
    jobs = _jobs(request)
    job = await jobs.get_job(actor, job_id)
    placed = marks(
        job,
        await jobs.list_events(actor, job_id),
        await jobs.list_steps(actor, job_id),
        await jobs.list_callbacks(actor, job_id),
    )
    start = placed[0].at if placed else job.created_at
    context = {
        "actor": actor,
        "page": "jobs",
        "job": job,
        "marks": [(mark, since(mark, start)) for mark in placed],
        "span": since(placed[-1], start) if placed else "+0 ms",
    }
    return _render(request, "timeline.html", context)

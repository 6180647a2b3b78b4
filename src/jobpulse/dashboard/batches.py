"""LLM batches: each followed batch with its progress (from `request_counts`), the time left
before its provider expires it, and where its results are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from jobpulse.batches.rules import BATCH_JOB_TYPE
from jobpulse.dashboard.pages import SignedIn, _jobs, _render
from jobpulse.domain import Job
from jobpulse.listing import JobFilter, Page

router = APIRouter(include_in_schema=False)
SHOWN = 50
#: Where a batch's results are, as its metadata names them.
RESULT_KEYS = ("results_url", "output_file_id", "error_file_id")


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One batch as the page shows it."""

    job: Job
    provider: str
    batch_id: str
    counts: dict[str, int]
    done: int
    total: int
    expires_at: datetime | None
    expires_in: str | None
    results: dict[str, Any]

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def left(until: datetime | None, now: datetime) -> str | None:
    """'expires in 3 h 12 min', 'expired 5 min ago' (None without an expiry)."""
    if until is None or until.tzinfo is None:
        return None
    seconds = int((until - now).total_seconds())
    hours, minutes = divmod(abs(seconds) // 60, 60)
    span = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"expires in {span}" if seconds >= 0 else f"expired {span} ago"


def _counts(metadata: dict[str, Any]) -> dict[str, int]:
    counts = metadata.get("request_counts")
    if not isinstance(counts, dict):
        return {}
    return {str(k): v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}


def _whole(progress: object, name: str) -> int | None:
    """`progress[name]` if it is a whole number."""
    if not isinstance(progress, dict):
        return None
    value = progress.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def batch_row(job: Job, now: datetime) -> BatchRow:
    """What the page shows of a batch's job."""
    metadata = job.metadata
    progress = metadata.get("progress")
    counts = _counts(metadata)
    total = _whole(progress, "total")
    done = _whole(progress, "done") or 0
    if total is None:
        total = sum(counts.values())
    expires_at = _moment(metadata.get("expires_at"))
    results = {key: metadata[key] for key in RESULT_KEYS if metadata.get(key)}
    if isinstance(metadata.get("results"), dict):
        results["summary"] = metadata["results"]
    return BatchRow(
        job=job,
        provider=str(metadata.get("provider", "—")),
        batch_id=str(metadata.get("batch_id", "—")),
        counts=counts,
        done=max(0, min(done, total)),
        total=max(total, 0),
        expires_at=expires_at,
        expires_in=left(expires_at, now),
        results=results,
    )


@router.get("/batches")
async def batch_list(request: Request, actor: SignedIn) -> Response:
    jobs = _jobs(request)
    found = await jobs.list_jobs(actor, JobFilter(job_type=BATCH_JOB_TYPE), Page(limit=SHOWN))
    now = jobs.now()
    context = {
        "actor": actor,
        "page": "batches",
        "batches": [batch_row(job, now) for job in found],
        "shown": SHOWN,
    }
    return _render(request, "batches.html", context)

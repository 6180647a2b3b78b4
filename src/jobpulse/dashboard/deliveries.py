"""Webhook deliveries across jobs: the newest first, by state, host and event type, each with
its last answer, and a button to send a job's callback again.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from jobpulse.dashboard.pages import Csrf, SignedIn, _back, _jobs, _render
from jobpulse.dashboard.session import check_csrf
from jobpulse.errors import JobPulseError, NotFoundError

router = APIRouter(include_in_schema=False)
#: Deliveries shown at once.
SHOWN = 100
STATES = ("pending", "delivered", "failed", "exhausted")
EVENT_TYPES = (
    "job.completed",
    "job.failed",
    "job.cancelled",
    "job.expired",
    "step.completed",
    "job.stuck",
)

Text = Annotated[str, Query(max_length=255)]


@router.get("/deliveries")
async def deliveries(
    request: Request,
    actor: SignedIn,
    state: Annotated[str, Query(max_length=16)] = "",
    host: Text = "",
    event_type: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    found = await _jobs(request).store.list_deliveries(
        actor, state or None, event_type or None, host.strip() or None, SHOWN
    )
    for row in found:
        row["host"] = urlsplit(row["url"]).hostname or row["url"]
    params = {"state": state, "host": host, "event_type": event_type}
    context = {
        "actor": actor,
        "page": "deliveries",
        "deliveries": found,
        "states": STATES,
        "event_types": EVENT_TYPES,
        "chosen": params,
        "query": urlencode({k: v for k, v in params.items() if v}),
        "shown": SHOWN,
        "sent": request.query_params.get("sent"),
        "problem": request.query_params.get("problem"),
    }
    return _render(request, "deliveries.html", context)


@router.post("/deliveries/resend")
async def resend(
    request: Request,
    actor: SignedIn,
    job_id: Annotated[str, Form(max_length=64)],
    query: Annotated[str, Form(max_length=1024)] = "",
    csrf: Csrf = "",
) -> Response:
    check_csrf(request, csrf)
    back = f"/deliveries?{query}&" if query else "/deliveries?"
    try:
        await _jobs(request).retry_callback(actor, job_id)
    except NotFoundError:
        raise
    except JobPulseError:
        return _back(back + urlencode({"problem": job_id}))
    return _back(back + urlencode({"sent": job_id}))

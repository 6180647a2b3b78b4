"""The dashboard: overview, jobs, a job, sign-in; HTML drawn on the server from the same
JobManager the API uses, kept live by the event stream (static/dashboard.js fetches a page's
live region again when an event of its view arrives and morphs it in place).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobpulse.alerts.rules import Alert
from jobpulse.alerts.service import AlertRules
from jobpulse.api.stream import PING_S, Standing, server_events
from jobpulse.dashboard import charts, numbers
from jobpulse.dashboard.filters import PageFilters, check_text
from jobpulse.dashboard.live import JobCalls, RecentCalls, with_usage_news
from jobpulse.dashboard.outcomes import outcome
from jobpulse.dashboard.refusals import PageRoute, unknown_page_handler
from jobpulse.dashboard.session import (
    Sessions,
    SignInRequiredError,
    check_csrf,
    csrf_token,
    keep_csrf,
)
from jobpulse.dashboard.sorting import SORTED_BY, next_cursor, slowest_page
from jobpulse.dashboard.usage import job_usage, overview_usage
from jobpulse.domain import (
    ACTIVE,
    Actor,
    Job,
    JobStatus,
    StopReason,
)
from jobpulse.errors import JobPulseError, NotFoundError, UnauthorizedError
from jobpulse.jobs.manager import JobManager
from jobpulse.listing import JobFilter, Page
from jobpulse.stats.figures import Figures
from jobpulse.stats.windows import Bucket, Window

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
TEMPLATES.env.filters.update(numbers.FILTERS)
#: The overview's windows: how far back, and how the series is cut.
WINDOWS = {
    "24h": (timedelta(days=1), Bucket.HOUR),
    "7d": (timedelta(days=7), Bucket.DAY),
    "30d": (timedelta(days=30), Bucket.DAY),
}
PAGE_SIZE = 25
#: The pages with a live region (`_<page>` is the region alone).
LIVE_PAGES = frozenset({"overview.html", "jobs.html", "job.html"})

router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


async def _signed_in(request: Request) -> Actor:
    return await _sessions(request).actor(request)


def _jobs(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


SignedIn = Annotated[Actor, Depends(_signed_in)]


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """The page (or, `?fragment=1` on a live page, its live region alone)."""
    fragment = request.query_params.get("fragment") == "1" and template in LIVE_PAGES
    context = {"request": request, "csrf": csrf_token(request), **context}
    name = f"_{template}" if fragment else template
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    keep_csrf(request, response, _secure(request))
    response.headers["Cache-Control"] = "no-store"
    return response


def _back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def install(app: FastAPI, sessions: Sessions) -> None:
    """Serve the dashboard on `app`."""
    app.state.sessions = sessions
    app.include_router(router)
    app.mount("/static/dashboard", StaticFiles(directory=HERE / "static"), name="dashboard")

    async def sign_in_first(request: Request, _exc: Exception) -> Response:
        return _back(f"/login?next={request.url.path}")

    app.add_exception_handler(SignInRequiredError, sign_in_first)
    api_404 = app.exception_handlers[StarletteHTTPException]
    app.add_exception_handler(StarletteHTTPException, unknown_page_handler(api_404))


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:
    return _render(request, "login.html", {"next": _local(next), "error": None})


@router.post("/login")
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=256)],
    csrf: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=512)] = "/",
) -> Response:
    check_csrf(request, csrf)
    response = _back(_local(next))
    try:
        await _sessions(request).sign_in(request, response, key.strip())
    except UnauthorizedError:
        context = {"next": _local(next), "error": "That API key is not valid (or was revoked)."}
        return _render(request, "login.html", context, status_code=401)
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    check_csrf(request, csrf)
    response = _back("/login")
    await _sessions(request).sign_out(request, response)
    return response


def _local(path: str) -> str:
    """A path on this site (never another site's address) to go to after signing in."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


@router.get("/")
async def overview(
    request: Request,
    actor: SignedIn,
    window: str = "24h",
    job_type: Annotated[str | None, Query(max_length=128)] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    span, bucket = WINDOWS.get(window, WINDOWS["24h"])
    jobs = _jobs(request)
    now = jobs.now()
    check_text(job_type=job_type or "", model=model or "")
    query = JobFilter(job_type=job_type or None, model=model or None)
    shown = Window(now - span, now, bucket)
    stats = await Figures(jobs).stats(actor, query, shown)
    firing = await _firing_alerts(request, actor)
    label = "%H:%M" if bucket == Bucket.HOUR else "%b %d"
    filtered = {"job_type": job_type or "", "model": model or ""}
    by_status = {status.value: stats.by_status[status] for status in JobStatus}
    context = {
        "actor": actor,
        "page": "overview",
        "window": window if window in WINDOWS else "24h",
        "windows": list(WINDOWS),
        "job_type": job_type or "",
        "model": model or "",
        "stats": stats,
        "usage": await overview_usage(request, actor, query, shown, label),
        "firing": firing,
        "by_status": by_status,
        "completion": stats.rate(JobStatus.COMPLETED),
        "failure": stats.rate(JobStatus.FAILED),
        "quantiles": {
            name: {q: histogram.quantile(q) for q in (0.5, 0.9, 0.99)}
            for name, histogram in (("TTFT", stats.ttft), ("Duration", stats.duration))
        },
        "charts": {
            "status": charts.bars("Jobs by status", by_status, charts.STATUS_COLOURS),
            "throughput": charts.throughput(stats.series, label),
            "ttft": charts.distribution("Time to first token", stats.ttft),
            "duration": charts.distribution("Duration", stats.duration),
            "stop_reasons": charts.reasons(
                "Stop reasons", stats.stop_reasons or {"none": 0}, charts.REASON_COLOURS
            ),
        },
        "webhooks_url": _deliveries_url(request),
        "stream": _stream_url({name: value for name, value in filtered.items() if value}),
    }
    return _render(request, "overview.html", context)


async def _firing_alerts(request: Request, actor: Actor) -> list[Alert]:
    """The organization's firing alerts, for an admin (alert rules are theirs)."""
    if not actor.is_admin:
        return []
    rules: AlertRules = request.app.state.alert_rules
    return [alert for alert in await rules.alerts(actor, limit=0) if alert.resolved_at is None]


def _deliveries_url(request: Request) -> str:
    """Where the Webhooks tile leads: the deliveries page where there is one, else the API
    reference of callbacks (attempts of each job are on its page).
    """
    paths = {getattr(route, "path", None) for route in request.app.routes}
    return "/deliveries" if "/deliveries" in paths else "/docs#/callbacks"


def _stream_url(params: dict[str, str]) -> str:
    return "/live" + (f"?{urlencode(params)}" if params else "")


@router.get("/jobs")
async def job_list(
    request: Request,
    actor: SignedIn,
    filters: PageFilters,
    before: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    order: Annotated[str, Query(pattern="^(|newest|oldest|duration|ttft)$")] = "",
    cursor: Annotated[str | None, Query(max_length=96)] = None,
) -> Response:
    jobs = _jobs(request)
    query = filters.query
    oldest = order == "oldest"
    page = Page(limit=PAGE_SIZE, ascending=oldest, before=before or None, after=after or None)
    if order in SORTED_BY:
        found = await slowest_page(jobs, actor, query, order, cursor, PAGE_SIZE)
    else:
        found = await jobs.list_jobs(actor, query, page)
    count = await jobs.count_jobs(actor, query)
    params = filters.params()
    context = {
        "actor": actor,
        "page": "jobs",
        "jobs": found,
        "count": count,
        "filters": filters,
        "statuses": [s.value for s in JobStatus],
        "stop_reasons": [r.value for r in StopReason],
        "query": urlencode(params | ({"order": order} if order else {})),
        "next_cursor": next_cursor(found, order, PAGE_SIZE),
        "filter_query": urlencode(params),
        "order": order,
        "newer": None if order in SORTED_BY else _newer(found, before, after, oldest),
        "older": None if order in SORTED_BY else _older(found, before, after, oldest),
        "stream": _stream_url(params),
    }
    return _render(request, "jobs.html", context)


def _newer(found: list[Job], before: str | None, after: str | None, oldest: bool) -> str | None:
    """The cursor of the page of newer jobs (`after` it), if there may be one."""
    if oldest:
        return found[-1].id if len(found) == PAGE_SIZE else None
    return found[0].id if found and (before or after) else None


def _older(found: list[Job], before: str | None, after: str | None, oldest: bool) -> str | None:
    """The cursor of the page of older jobs (`before` it), if there may be one."""
    if oldest:
        return found[0].id if found and (before or after) else None
    return found[-1].id if len(found) == PAGE_SIZE else None


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str, actor: SignedIn) -> Response:
    jobs = _jobs(request)
    job = await jobs.get_job(actor, job_id)
    context = {
        "actor": actor,
        "page": "jobs",
        "job": job,
        "active": job.status in ACTIVE,
        "metadata": json.dumps(job.metadata, indent=2, sort_keys=True, ensure_ascii=False),
        "events": await jobs.list_events(actor, job_id),
        "callbacks": await jobs.list_callbacks(actor, job_id),
        "steps": await jobs.list_steps(actor, job_id),
        "usage": await job_usage(request, actor, job),
        "stream": _stream_url({"job_id": job.id, "calls": str((job.usage or {}).get("calls", 0))}),
        "outcome": outcome(
            request.query_params.get("action"), request.query_params.get("result"), job
        ),
    }
    return _render(request, "job.html", context)


async def _act(
    request: Request, job_id: str, csrf: str, name: str, action: Callable[[], Awaitable[object]]
) -> Response:
    """Run a job page's action and go back to the page, which says how it went."""
    check_csrf(request, csrf)
    try:
        await action()
    except NotFoundError:
        if name == "cancel":
            raise
        result = "not_found"  # the job's page then says: none to re-send, or no such job
    except JobPulseError as exc:
        result = exc.code
    else:
        result = "ok"
    return _back(f"/jobs/{job_id}?{urlencode({'action': name, 'result': result})}")


Csrf = Annotated[str, Form(max_length=64)]


@router.post("/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: str, actor: SignedIn, csrf: Csrf = "") -> Response:
    jobs = _jobs(request)
    reason = "cancelled from the dashboard"
    return await _act(
        request, job_id, csrf, "cancel", lambda: jobs.cancel_job(actor, job_id, reason)
    )


@router.post("/jobs/{job_id}/resend")
async def resend(request: Request, job_id: str, actor: SignedIn, csrf: Csrf = "") -> Response:
    jobs = _jobs(request)
    return await _act(request, job_id, csrf, "resend", lambda: jobs.retry_callback(actor, job_id))


@router.get("/live")
async def live(
    request: Request,
    filters: PageFilters,
    job_id: Annotated[str | None, Query(max_length=64)] = None,
    calls: Annotated[int | None, Query(ge=0)] = None,
) -> EventSourceResponse:
    """The events of a page's view, for its script (the session, not a key, says who), and
    `event: usage` when LLM calls are recorded (a job page: its job's, `calls` being the
    count it shows; see live.py); it ends with `event: revoked` when the session does
    (signed out, expired, key revoked).
    """
    session = await _sessions(request).session(request)
    query = JobFilter(job_id=job_id) if job_id else filters.query
    standing = Standing(request.app.state.keys.grants, session.key_hash, session.session_id)
    # A job's page also follows its heartbeats (its progress, its last sign of life).
    beats = job_id is not None
    events = server_events(request.app.state.feed, session.actor, query, None, standing, beats)
    jobs, actor = _jobs(request), session.actor
    watch = (
        JobCalls(jobs, actor, job_id, calls) if job_id else RecentCalls(jobs, actor.organization_id)
    )
    news = with_usage_news(events, watch)
    return EventSourceResponse(news, ping=PING_S, headers={"Cache-Control": "no-store"})

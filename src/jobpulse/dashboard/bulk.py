"""The jobs page's bulk actions: cancel, or re-send the callbacks of, the jobs ticked or every
job the filters match; first a count to confirm, then the result, both in words.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from jobpulse.bulk.actions import BulkActions
from jobpulse.bulk.rules import BulkResult
from jobpulse.dashboard.filters import Filters
from jobpulse.dashboard.pages import Csrf, SignedIn, _jobs, _render
from jobpulse.dashboard.session import check_csrf
from jobpulse.domain import Actor
from jobpulse.errors import ValidationError
from jobpulse.listing import JobFilter

router = APIRouter(include_in_schema=False)
#: Jobs that can be ticked at once (a page holds fewer).
SELECTED_MAX = 100
ACTIONS = ("cancel", "resend")
SCOPES = ("selected", "matching")


def filters_of(query: str) -> Filters:
    """The jobs page's filters from its query string (as the page's address holds them)."""
    given = dict(parse_qsl(query, keep_blank_values=True))
    names = [name for name in Filters.__slots__ if name != "stuck"]
    values = {name: given.get(name, "")[:255] for name in names}
    return Filters(**values, stuck=given.get("stuck") == "true")


def jobs_n(number: int) -> str:
    """'1 job', '3 jobs'."""
    return f"{number} job{'' if number == 1 else 's'}"


def _question(action: str, scope: str, found: BulkResult) -> tuple[str, str | None]:
    """What the confirmation asks, and its button (None: nothing to do)."""
    which = "ticked" if scope == "selected" else "matching"
    if action == "cancel":
        if found.changed == 0:
            return (
                f"None of the {jobs_n(found.matched)} {which} is active: nothing to cancel.",
                None,
            )
        left = (
            f"; {found.skipped} already ended and will be left as they are" if found.skipped else ""
        )
        return (
            f"Cancel {jobs_n(found.changed)}? {found.changed} of the {jobs_n(found.matched)} "
            f"{which} {'is' if found.changed == 1 else 'are'} active{left}.",
            f"Yes, cancel {jobs_n(found.changed)}",
        )
    if found.changed == 0:
        return f"None of the {jobs_n(found.matched)} {which} has a callback to send again.", None
    left = (
        f"; {found.skipped} have none to send (still active, or no callback set)"
        if found.skipped
        else ""
    )
    return (
        f"Send the callbacks of {jobs_n(found.changed)} again? {found.changed} of the "
        f"{jobs_n(found.matched)} {which} ended with a callback{left}.",
        f"Yes, re-send {found.changed} callback{'' if found.changed == 1 else 's'}",
    )


def _outcome(action: str, done: BulkResult) -> str:
    if action == "cancel":
        one = done.skipped == 1
        left = "was left as it was" if one else "were left as they were"
        rest = f" {jobs_n(done.skipped)} had already ended and {left}." if done.skipped else ""
        return f"Cancelled {jobs_n(done.changed)}.{rest}"
    rest = f" {jobs_n(done.skipped)} had no callback to send." if done.skipped else ""
    return f"The callbacks of {jobs_n(done.changed)} will be sent again.{rest}"


async def _run(
    actions: BulkActions, actor: Actor, action: str, query: JobFilter, dry_run: bool
) -> BulkResult:
    if action == "cancel":
        return await actions.cancel(
            actor, query, dry_run=dry_run, reason="cancelled from the dashboard"
        )
    return await actions.resend_callbacks(actor, query, dry_run=dry_run)


@router.post("/jobs/bulk")
async def bulk(
    request: Request,
    actor: SignedIn,
    action: Annotated[str, Form(max_length=16)],
    scope: Annotated[str, Form(max_length=16)] = "selected",
    query: Annotated[str, Form(max_length=4096)] = "",
    job_id: Annotated[list[str] | None, Form()] = None,
    confirmed: Annotated[str, Form(max_length=1)] = "",
    csrf: Csrf = "",
) -> Response:
    check_csrf(request, csrf)
    if action not in ACTIONS or scope not in SCOPES:
        raise ValidationError("choose cancel or re-send, for the ticked or the matching jobs")
    filters = filters_of(query)
    back = urlencode(filters.params())
    ids = list(dict.fromkeys(job_id or []))[:SELECTED_MAX] if scope == "selected" else []
    if any(len(one) > 64 for one in ids):
        raise ValidationError("a job id is at most 64 characters")
    context = {
        "actor": actor,
        "page": "jobs",
        "back": back,
        "query": query,
        "action": action,
        "scope": scope,
        "ids": ids,
        "result": None,
        "question": None,
        "confirm": None,
    }
    if scope == "selected" and not ids:
        context["question"] = "No job is ticked: tick some jobs, or choose all matching jobs."
        return _render(request, "bulk.html", context, status_code=422)
    queries = [JobFilter(job_id=one) for one in ids] if ids else [filters.query]
    actions = BulkActions(_jobs(request))
    dry_run = confirmed != "1"
    total = BulkResult(0, 0)
    for one in queries:
        found = await _run(actions, actor, action, one, dry_run)
        total = BulkResult(total.matched + found.matched, total.changed + found.changed)
    if dry_run:
        context["question"], context["confirm"] = _question(action, scope, total)
    else:
        context["result"] = _outcome(action, total)
    return _render(request, "bulk.html", context)

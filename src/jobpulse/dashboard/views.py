"""Saved views of the jobs page (named filters per user, shareable in the organization) and
the search box that goes straight to a job by its id.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from jobpulse.dashboard.pages import Csrf, SignedIn, _back, _jobs, _render
from jobpulse.dashboard.session import check_csrf
from jobpulse.errors import NotFoundError
from jobpulse.views.service import SavedViews

router = APIRouter(include_in_schema=False)


def _views(request: Request) -> SavedViews:
    return SavedViews(_jobs(request).store)


@router.get("/views")
async def view_list(request: Request, actor: SignedIn) -> Response:
    views = await _views(request).list(actor)
    context = {
        "actor": actor,
        "page": "views",
        "views": views,
        "saved": request.query_params.get("saved"),
    }
    return _render(request, "views.html", context)


@router.post("/views")
async def save_view(
    request: Request,
    actor: SignedIn,
    name: Annotated[str, Form(max_length=128)],
    query: Annotated[str, Form(max_length=2048)] = "",
    shared: Annotated[str, Form(max_length=8)] = "",
    csrf: Csrf = "",
) -> Response:
    check_csrf(request, csrf)
    now = _jobs(request).now()
    view = await _views(request).save(actor, name, query, shared=shared == "true", now=now)
    return _back(f"/views?saved={quote(view.name)}")


@router.post("/views/{view_id}/delete")
async def delete_view(request: Request, view_id: str, actor: SignedIn, csrf: Csrf = "") -> Response:
    check_csrf(request, csrf)
    await _views(request).delete(actor, view_id)
    return _back("/views")


@router.get("/jobs/find")
async def find_job(
    request: Request, actor: SignedIn, id: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    """Straight to the job with this id, if the actor may see it; else say so."""
    wanted = id.strip()
    try:
        job = await _jobs(request).get_job(actor, wanted)
    except NotFoundError:
        context = {"actor": actor, "page": "jobs", "wanted": wanted}
        return _render(request, "find.html", context, status_code=404)
    return _back(f"/jobs/{quote(job.id)}")

"""The dashboard's error pages: a page that names an unknown job or a wrong filter answers
with an HTML page in words (what was wrong, where to go), never the API's JSON. The live
stream keeps the API's answers, as do forms for anything but an unknown job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobpulse.dashboard.session import csrf_token
from jobpulse.domain import Actor
from jobpulse.errors import InvalidCursorError, NotFoundError, ValidationError

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
#: Paths that answer a script, not a reader: their errors stay JSON.
SCRIPTED = frozenset({"/live"})

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
ExceptionHandler = Callable[[Request, Exception], Any]


def _where(exc: RequestValidationError) -> str:
    """The first wrong query parameter, in words."""
    for error in exc.errors():
        name = str(error["loc"][-1]) if error["loc"] else "the address"
        return f"{name}: {error['msg']}"
    return "the address is not valid"


def _refusal(exc: Exception) -> tuple[int, str, str] | None:
    """The status, heading and sentence of the page for `exc` (None: not a page's error)."""
    if isinstance(exc, NotFoundError):
        text = "There is no such job, or it is not one you can see. It may have been deleted."
        return 404, "Not found", text
    if isinstance(exc, RequestValidationError):
        return 422, "That filter is not valid", _where(exc)
    if isinstance(exc, ValidationError | InvalidCursorError):
        return (
            422 if isinstance(exc, ValidationError) else 400,
            "That filter is not valid",
            (exc.message),
        )
    return None


async def error_page(
    request: Request, status: int, title: str, message: str, actor: Actor | None
) -> Response:
    """The HTML page that says what went wrong and offers a way on."""
    context = {
        "request": request,
        "csrf": csrf_token(request),
        "actor": actor,
        "page": "",
        "status": status,
        "title": title,
        "message": message,
        "back": "/jobs" if request.url.path.startswith("/jobs") else "/",
    }
    response = TEMPLATES.TemplateResponse(request, "error.html", context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


class PageRoute(APIRoute):
    """A dashboard route whose GET errors are pages a reader understands."""

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                refusal = _refusal(exc)
                if refusal is None or request.url.path in SCRIPTED:
                    raise
                if request.method != "GET" and refusal[0] != 404:
                    raise
                actor = await _actor(request)  # signed out: to the sign-in form first
                return await error_page(request, *refusal, actor)

        return handler


async def _actor(request: Request) -> Actor:
    actor: Actor = await request.app.state.sessions.actor(request)
    return actor


def unknown_page_handler(api_handler: ExceptionHandler) -> ExceptionHandler:
    """A 404 for a browser that asked for a page at an address nothing serves: an HTML page
    (signed in or not); the API's paths, and anything not asking for HTML, keep `api_handler`.
    """

    async def handle(request: Request, exc: Exception) -> Response:
        is_page = "text/html" in request.headers.get("accept", "")
        path = request.url.path
        if (
            isinstance(exc, StarletteHTTPException)
            and exc.status_code == 404
            and is_page
            and not path.startswith(("/v1/", "/static/"))
        ):
            text = "There is no page at this address. It may have moved, or the link is wrong."
            return await error_page(request, 404, "Not found", text, None)
        answer = api_handler(request, exc)
        response: Response = await answer if isinstance(answer, Awaitable) else answer
        return response

    return handle

"""One place that turns every error into the JSON body of DESIGN §3, and nothing else leaks."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from jobpulse.errors import (
    ForbiddenError,
    HeadersTooLargeError,
    InvalidCursorError,
    InvalidTransitionError,
    JobPulseError,
    NotFoundError,
    PayloadTooLargeError,
    ReadTimeoutError,
    RequestTimeoutError,
    TooManyConnectionsError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
    ValidationError,
)

logger = logging.getLogger("jobpulse.api")

#: The HTTP status of each error.
STATUS_CODES: dict[type[JobPulseError], int] = {
    UnauthorizedError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    InvalidTransitionError: 409,
    PayloadTooLargeError: 413,
    RequestTimeoutError: 408,
    HeadersTooLargeError: 431,
    TooManyConnectionsError: 429,
    ValidationError: 422,
    InvalidCursorError: 400,
    TooManyRequestsError: 429,
    ReadTimeoutError: 503,
    UnavailableError: 503,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
}
#: Seconds a client is asked to wait before retrying while the database is unavailable.
RETRY_AFTER_S = 2
#: The header naming an unexpected error, as it is logged.
CORRELATION_HEADER = "X-Correlation-ID"


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **details: object,
) -> JSONResponse:
    """The JSON error every failure answers with."""
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    body = {"error": {"code": code, "message": message, **details}}
    return JSONResponse(body, status_code=status, headers=headers)


def _jobpulse_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobPulseError)
    return jobpulse_error_response(exc)


def jobpulse_error_response(exc: JobPulseError) -> JSONResponse:
    """The answer to a JobPulseError: its status, code, message and details."""
    status = next(
        (code for kind, code in STATUS_CODES.items() if isinstance(exc, kind)),
        500,
    )
    headers = None
    if isinstance(exc, TooManyRequestsError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return error_response(status, exc.code, exc.message, headers, **exc.details)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": list(error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    first = problems[0] if problems else {"loc": [], "message": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return error_response(422, "validation_error", f"{where}: {first['message']}", errors=problems)


#: The methods a 405's `Allow` may name.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """The methods some route serves at the request's path, for a 405's `Allow` (Starlette
    names only those of the first route there, and GET and POST /v1/jobs are two routes).
    The app's own router is asked, method by method, as it would route that request; a
    mount (static files) takes every method to its app, which names its own.
    """
    path = {
        "type": "http",
        "path": request.scope["path"],
        "root_path": request.scope.get("root_path", ""),
    }
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return ", ".join(
        method
        for method in METHODS
        if any(route.matches(path | {"method": method})[0] == Match.FULL for route in routes)
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "GET, HEAD")
    return error_response(exc.status_code, code, str(exc.detail), headers)


def unexpected_error_response(request: Request, exc: Exception) -> JSONResponse:
    """500 with nothing of the error but an id to find it in the log by; the connection is
    closed after it (the server does, as the error leaves the app), and the client is told.
    """
    correlation_id = uuid.uuid4().hex
    logger.error(
        "unhandled error %s on %s %s",
        correlation_id,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    headers = {CORRELATION_HEADER: correlation_id, "Connection": "close"}
    return error_response(
        500, "internal_error", "internal server error", headers, correlation_id=correlation_id
    )


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(JobPulseError, _jobpulse_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, unexpected_error_response)

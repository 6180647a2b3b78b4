"""Liveness and readiness."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import CONTENT_TYPE_LATEST

from jobpulse.api.deps import Jobs
from jobpulse.api.errors import error_response
from jobpulse.errors import UnavailableError
from jobpulse.schemas import ErrorBody, Health

router = APIRouter(tags=["health"])
logger = logging.getLogger("jobpulse.api")


@router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> Health:
    """The process is up and serving, and how its event loop is doing."""
    loop = request.app.state.watchdog.health
    return Health(status="ok", event_loop=loop.state, event_loop_lag_s=round(loop.lag_s, 3))


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorBody}})
async def readyz(jobs: Jobs) -> Health | JSONResponse:
    """The database answers (503 while it does not, whatever the reason)."""
    try:
        await jobs.store.ping()
    except UnavailableError as exc:
        return error_response(503, exc.code, exc.message)
    except Exception as exc:  # not ready, whatever the database said
        logger.warning("readiness check failed: %s", type(exc).__name__)
        return error_response(503, UnavailableError.code, "the database does not answer")
    return Health(status="ready")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, jobs: Jobs) -> Response:
    """Prometheus text: this process's counters, and gauges read from the database now.
    With JOBPULSE_METRICS_TOKEN set, only for `Authorization: Bearer <that token>`.
    """
    token: str | None = request.app.state.metrics_token
    if token is not None and not _bears(request, token):
        return error_response(401, "unauthorized", "send the metrics token as a bearer token")
    await jobs.refresh_gauges()
    jobs.metrics.loop_lag.set(request.app.state.watchdog.lag_s)
    return Response(jobs.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _bears(request: Request, token: str) -> bool:
    scheme, sent = get_authorization_scheme_param(request.headers.get("authorization"))
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.encode(), token.encode())

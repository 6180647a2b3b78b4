"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Connection

from jobpulse.api.deps import Jobs
from jobpulse.api.errors import error_response
from jobpulse.errors import UnavailableError
from jobpulse.schemas import ErrorBody, Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> Health:
    """The process is up and serving, and how its event loop is doing."""
    loop = request.app.state.watchdog.health
    return Health(status="ok", event_loop=loop.state, event_loop_lag_s=round(loop.lag_s, 3))


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorBody}})
async def readyz(jobs: Jobs) -> Health | JSONResponse:
    """The database answers (503 while it does not)."""
    try:
        await jobs.database.read(_ping)
    except UnavailableError as exc:
        return error_response(503, exc.code, exc.message)
    return Health(status="ready")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, jobs: Jobs) -> Response:
    """Prometheus text: this process's counters, and gauges read from the database now."""
    await jobs.refresh_gauges()
    jobs.metrics.loop_lag.set(request.app.state.watchdog.lag_s)
    return Response(jobs.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _ping(connection: Connection) -> None:
    connection.exec_driver_sql("SELECT 1")

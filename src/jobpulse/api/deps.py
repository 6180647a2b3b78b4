"""Dependencies of the routes, as Annotated aliases.

All are `async def`: FastAPI runs a plain `def` dependency in a thread pool, a hop per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry import trace

from jobpulse.domain import Actor
from jobpulse.errors import UnauthorizedError
from jobpulse.keys import KeyManager
from jobpulse.service import JobManager

_bearer = HTTPBearer(auto_error=False, description="An API key from `jobpulse keys create`.")


async def get_jobs(request: Request) -> JobManager:
    """The app's JobManager."""
    jobs: JobManager = request.app.state.jobs
    return jobs


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The actor the request's API key speaks for."""
    if credentials is None:
        raise UnauthorizedError("send an API key as 'Authorization: Bearer <key>'")
    keys: KeyManager = request.app.state.keys
    actor = await keys.authenticate(credentials.credentials)
    trace.get_current_span().set_attributes(
        {"user.id": actor.user_id, "organization.id": actor.organization_id}
    )
    return actor


Jobs = Annotated[JobManager, Depends(get_jobs)]
CurrentActor = Annotated[Actor, Depends(authenticate)]

"""Dependencies of the routes, as Annotated aliases.

Every job route takes one dependency, `Authenticated`: FastAPI resolves each dependency of
each request through its generic machinery, and the three this used to be (the JobManager,
HTTPBearer and the key lookup) cost a tenth of a PATCH. All are `async def`: FastAPI runs a
plain `def` dependency in a thread pool, a hop per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from opentelemetry import trace

from jobpulse.domain import Actor
from jobpulse.errors import UnauthorizedError
from jobpulse.jobs.manager import JobManager
from jobpulse.keys import KeyManager, hash_key


async def get_jobs(request: Request) -> JobManager:
    """The app's JobManager."""
    jobs: JobManager = request.app.state.jobs
    return jobs


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, and the JobManager their request goes to."""

    actor: Actor
    jobs: JobManager
    #: The SHA-256 of the caller's key (what a stream it opens stands on).
    key_hash: str


async def bearer_actor(keys: KeyManager, authorization: str | None) -> tuple[Actor, str]:
    """Who an `Authorization: Bearer <key>` header speaks for, and the key's SHA-256;
    UnauthorizedError if no one.
    """
    scheme, key = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not key:
        raise UnauthorizedError("send an API key as 'Authorization: Bearer <key>'")
    digest = hash_key(key)
    return await keys.authenticate_hash(digest), digest


class BearerKey(SecurityBase):
    """The caller, from `Authorization: Bearer <key>`; shown in the OpenAPI document as the
    API's bearer security scheme (FastAPI documents any SecurityBase dependency).
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(description="An API key from `jobpulse keys create`.")
        self.scheme_name = "HTTPBearer"

    async def __call__(self, request: Request) -> Caller:
        keys: KeyManager = request.app.state.keys
        actor, digest = await bearer_actor(keys, request.headers.get("authorization"))
        trace.get_current_span().set_attributes(
            {"user.id": actor.user_id, "organization.id": actor.organization_id}
        )
        return Caller(actor, request.app.state.jobs, digest)


Jobs = Annotated[JobManager, Depends(get_jobs)]
Authenticated = Annotated[Caller, Depends(BearerKey())]

"""Dependencies of the routes, as Annotated aliases.

Every job route takes one dependency, `Authenticated`: FastAPI resolves each dependency of
each request through its generic machinery, and the three this used to be (the JobManager,
HTTPBearer and the key lookup) cost a tenth of a PATCH. All are `async def`: FastAPI runs a
plain `def` dependency in a thread pool, a hop per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param

from jobpulse.domain import Actor, Job
from jobpulse.errors import ForbiddenError, UnauthorizedError, ValidationError
from jobpulse.jobs.manager import JobManager
from jobpulse.keys import KeyManager, hash_key
from jobpulse.listing import JobFilter
from jobpulse.request_spans import note
from jobpulse.tokens.manager import TokenHolder, TokenManager
from jobpulse.tokens.rules import is_token

#: The query parameter that carries a scoped token.
ACCESS_TOKEN = "access_token"
#: What a scoped token is told on any route but those it may read.
TOKEN_READS_ONLY = (
    "a scoped token reads GET /v1/jobs/{id}, GET /v1/jobs/{id}/stream and GET /v1/jobs/stream "
    "only: use an API key"
)


async def get_jobs(request: Request) -> JobManager:
    """The app's JobManager."""
    jobs: JobManager = request.app.state.jobs
    return jobs


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, and the JobManager their request goes to."""

    actor: Actor
    jobs: JobManager
    #: The SHA-256 of the caller's key (what a stream it opens stands on); a token's
    #: issuing key for a scoped token.
    key_hash: str
    #: The scoped token the caller read with (None for an API key).
    token: TokenHolder | None = None

    def check(self, job: Job) -> Job:
        """`job` if the caller may read it (a token: within its scope); NotFoundError if not."""
        return job if self.token is None else self.token.check(job)

    def narrow(self, query: JobFilter) -> JobFilter:
        """`query` within what the caller may read."""
        return query if self.token is None else self.token.scope.narrow(query)


async def bearer_actor(keys: KeyManager, authorization: str | None) -> tuple[Actor, str]:
    """Who an `Authorization: Bearer <key>` header speaks for, and the key's SHA-256;
    UnauthorizedError if no one.
    """
    scheme, key = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not key:
        raise UnauthorizedError("send an API key as 'Authorization: Bearer <key>'")
    if is_token(key):
        raise ForbiddenError(TOKEN_READS_ONLY)
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
        if ACCESS_TOKEN in request.query_params:
            raise ForbiddenError(TOKEN_READS_ONLY)
        actor, digest = await bearer_actor(keys, request.headers.get("authorization"))
        traced(actor)
        return Caller(actor, request.app.state.jobs, digest)


def traced(actor: Actor) -> None:
    """The caller's ids on the request's span."""
    note({"user.id": actor.user_id, "organization.id": actor.organization_id})


class BearerKeyOrToken(BearerKey):
    """The caller, from an API key or a scoped token (`jpt_…`) in `Authorization: Bearer`,
    or a scoped token in `?access_token=` (a browser's EventSource sends no header).
    """

    async def __call__(
        self,
        request: Request,
        access_token: Annotated[
            str | None,
            Query(
                max_length=128,
                description="A scoped token (`jpt_…`, from POST /v1/tokens) for clients that "
                "cannot send headers, such as EventSource.",
            ),
        ] = None,
    ) -> Caller:
        authorization = request.headers.get("authorization")
        if access_token is None:
            scheme, secret = get_authorization_scheme_param(authorization)
            if scheme.lower() != "bearer" or not is_token(secret):
                keys: KeyManager = request.app.state.keys
                actor, digest = await bearer_actor(keys, authorization)
                traced(actor)
                return Caller(actor, request.app.state.jobs, digest)
        elif authorization is not None:
            raise ValidationError("send the Authorization header or ?access_token=, not both")
        elif not is_token(access_token):
            raise UnauthorizedError(
                "?access_token= takes a scoped token (jpt_…); send an API key as "
                "'Authorization: Bearer <key>'"
            )
        else:
            secret = access_token
        tokens: TokenManager = request.app.state.tokens
        holder = await tokens.authenticate(secret)
        traced(holder.actor)
        return Caller(holder.actor, request.app.state.jobs, holder.key_hash, holder)


Jobs = Annotated[JobManager, Depends(get_jobs)]
Authenticated = Annotated[Caller, Depends(BearerKey())]
#: For the routes a scoped token may read too.
Reader = Annotated[Caller, Depends(BearerKeyOrToken())]

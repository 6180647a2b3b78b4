"""/v1/tokens: an API key mints a scoped read-only token (see jobpulse.tokens)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from jobpulse.api.deps import Authenticated
from jobpulse.api.jobs import ERROR_RESPONSES
from jobpulse.tokens.manager import TokenManager
from jobpulse.tokens.rules import Scope
from jobpulse.tokens.schemas import TokenCreate, TokenPublic

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenPublic)
async def create_token(body: TokenCreate, caller: Authenticated, request: Request) -> TokenPublic:
    """A read-only token for one job (`job_id`: one you can see, else 404) or for your jobs
    of a `job_type` and/or with `metadata` values, living `ttl_s` seconds (default 900, at
    most 86400). It reads GET /v1/jobs/{id} and the streams, by `Authorization: Bearer` or
    `?access_token=`, and dies with your key. The token is shown once.
    """
    scope = Scope(body.job_id, body.job_type, body.metadata or {})
    tokens: TokenManager = request.app.state.tokens
    secret, expires_at = await tokens.create(caller.actor, caller.key_hash, scope, body.ttl_s)
    return TokenPublic(token=secret, expires_at=expires_at, scope=scope.to_document())

"""The wire format of POST /v1/tokens: what is asked (`TokenCreate`) and answered
(`TokenPublic`, which the SDK reads too: pydantic and the pure rules only).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from jobpulse.tokens.rules import TTL_DEFAULT_S, TTL_MAX_S, VALUE_MAX


class TokenCreate(BaseModel):
    """The body of POST /v1/tokens: a `job_id`, or a `job_type` and/or `metadata` values."""

    model_config = ConfigDict(extra="forbid")

    job_id: str | None = Field(default=None, min_length=1, max_length=VALUE_MAX)
    job_type: str | None = Field(default=None, min_length=1, max_length=VALUE_MAX)
    metadata: dict[str, str] | None = None
    ttl_s: int = Field(default=TTL_DEFAULT_S, ge=1, le=TTL_MAX_S, strict=True)


class TokenPublic(BaseModel):
    """A new scoped token: its secret (shown once), when it expires, and what it reads."""

    token: str
    expires_at: datetime
    scope: dict[str, object]

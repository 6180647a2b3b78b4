"""Mints scoped tokens and tells who a token reads for.

A token speaks for the key that minted it, within its scope: its reads are that key's,
narrowed. It is checked as that key is (jobpulse.keys: forgotten at once on every replica
that hears of a revocation, within CACHE_SECONDS on any other), so it dies with its key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from jobpulse.clock import utcnow
from jobpulse.domain import Actor, Job
from jobpulse.errors import NotFoundError, UnauthorizedError
from jobpulse.jobs.manager import JobManager
from jobpulse.keys import KeyManager, hash_key
from jobpulse.storage.tokens_store import FoundToken
from jobpulse.tokens.rules import TOKEN_PREFIX, Scope, expiry

#: Tokens whose stored row is remembered (a row never changes: its expiry and its key are
#: checked on every use).
CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Who a valid token reads for: its key's actor, within `scope`, until `expires_at`."""

    actor: Actor
    scope: Scope
    expires_at: datetime
    #: The SHA-256 of the issuing key (what a stream opened with the token stands on).
    key_hash: str

    def check(self, job: Job) -> Job:
        """`job` if it is in the scope; NotFoundError, as for a job that is not there, if not."""
        if not self.scope.matches(job):
            raise NotFoundError(f"job {job.id} not found")
        return job


class TokenManager:
    """Mints and checks scoped tokens."""

    def __init__(
        self,
        jobs: JobManager,
        keys: KeyManager,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._jobs = jobs
        self._keys = keys
        self._clock = clock
        self._found: dict[str, FoundToken] = {}

    async def create(
        self, actor: Actor, key_hash: str, scope: Scope, ttl_s: int
    ) -> tuple[str, datetime]:
        """A new token of the key with `key_hash` (whose actor is `actor`) and when it
        expires. NotFoundError for a job the actor cannot see; ValidationError for a bad ttl.
        """
        now = self._clock()
        expires_at = expiry(now, ttl_s)
        if scope.job_id is not None:
            await self._jobs.get_job(actor, scope.job_id)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        stored = await self._jobs.store.insert_token(
            hash_key(secret), key_hash, scope, now, expires_at
        )
        if not stored:
            raise UnauthorizedError("invalid or revoked API key")
        return secret, expires_at

    async def authenticate(self, secret: str) -> TokenHolder:
        """Who the token reads for; UnauthorizedError if it is unknown, expired or its key
        was revoked.
        """
        digest = hash_key(secret)
        found = self._found.get(digest)
        if found is None:
            found = await self._jobs.store.find_token(digest)
            if found is None:
                raise UnauthorizedError("invalid token")
            if len(self._found) >= CACHE_MAX:
                del self._found[next(iter(self._found))]
            self._found[digest] = found
        if self._clock() >= found.expires_at:
            raise UnauthorizedError("the token has expired")
        try:
            actor = await self._keys.authenticate_hash(found.key_hash)
        except UnauthorizedError:
            raise UnauthorizedError("the token's key was revoked") from None
        return TokenHolder(actor, found.scope, found.expires_at, found.key_hash)

"""API keys: one organization and one user each, member or admin, stored hashed."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable

from jobpulse.clock import utcnow
from jobpulse.domain import Actor
from jobpulse.errors import NotFoundError, UnauthorizedError, ValidationError
from jobpulse.grants import Grants
from jobpulse.storage.store import REVOKED_CHANNEL, SESSION_ENDED, ApiKey, JobStore, StoredKey

KEY_PREFIX = "jp_"
#: How long a verified key is trusted before the database is asked again: the longest a key
#: revoked elsewhere still works here when nothing announces it (always on SQLite, where the
#: `keys revoke` command is another process; on PostgreSQL while the listener reconnects).
CACHE_SECONDS = 5.0


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyManager:
    """Creates, checks, lists and revokes API keys."""

    def __init__(self, store: JobStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._verified: dict[str, tuple[Actor, float]] = {}
        #: What the open streams of this process stand on (ended with their key).
        self.grants = Grants(store, revoked=self._forget_keys)
        #: Lookups in flight, by key hash: a burst of requests with one key reads it once.
        self._looking: dict[str, asyncio.Future[StoredKey | None]] = {}

    async def create(
        self, *, organization_id: str, user_id: str, is_admin: bool = False, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (which is not stored and cannot be shown again)."""
        for label, value in (("organization", organization_id), ("user", user_id)):
            if not value or len(value) > 128:
                raise ValidationError(f"{label} must be 1 to 128 characters")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=f"key-{uuid.uuid4().hex[:12]}",
            prefix=secret[:10],
            organization_id=organization_id,
            user_id=user_id,
            is_admin=is_admin,
            name=name,
            created_at=utcnow(),
            revoked_at=None,
        )
        await self.store.insert_key(StoredKey(key, hash_key(secret)))
        return key, secret

    async def authenticate(self, secret: str) -> Actor:
        """The actor a key speaks for; UnauthorizedError for an unknown or revoked key."""
        return await self.authenticate_hash(hash_key(secret))

    async def authenticate_hash(self, digest: str) -> Actor:
        """The actor the key with this hash speaks for (a dashboard session holds the hash,
        never the key); UnauthorizedError for an unknown or revoked key.
        """
        cached = self._verified.get(digest)
        if cached is not None and self._clock() - cached[1] < CACHE_SECONDS:
            return cached[0]
        stored = await asyncio.shield(self._lookup(digest))
        if stored is None:
            self._verified.pop(digest, None)
            raise UnauthorizedError("invalid or revoked API key")
        key = stored.key
        actor = Actor(key.organization_id, key.user_id, key.is_admin)
        self._verified[digest] = (actor, self._clock())
        return actor

    def _lookup(self, digest: str) -> asyncio.Future[StoredKey | None]:
        """The key's row as read by the lookup in flight, or a new one."""
        looking = self._looking.get(digest)
        if looking is None:
            looking = asyncio.ensure_future(self.store.find_active_key(digest))
            self._looking[digest] = looking

            def forget(done: asyncio.Future[StoredKey | None]) -> None:
                if self._looking.get(digest) is done:
                    del self._looking[digest]

            looking.add_done_callback(forget)
        return looking

    async def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return [stored.key for stored in await self.store.list_keys()]

    async def count_active(self) -> int:
        """How many keys can be used."""
        return await self.store.count_active_keys()

    async def revoke(self, key_id: str) -> None:
        """Revoke a key; this process forgets it at once, and on PostgreSQL every process
        that follows revocations does as soon as it commits (others within CACHE_SECONDS).
        The streams it opened close as fast (see jobpulse.grants).
        """
        if not await self.store.revoke_key(key_id, utcnow()):
            raise NotFoundError(f"no active key {key_id}")
        self.forget()

    def forget(self) -> None:
        """Something was revoked (a key, a session): check keys and open streams again,
        forgetting the lookups in flight too (they may have read a key before its revocation).
        """
        self._verified.clear()
        self._looking.clear()
        self.grants.changed()

    def _forget_keys(self, digests: set[str]) -> None:
        for digest in digests:
            self._verified.pop(digest, None)
            self._looking.pop(digest, None)

    async def follow_revocations(self) -> None:
        """Forget verified keys, and recheck open streams, whenever any process revokes a key
        or ends a session (PostgreSQL), until cancelled; returns at once on SQLite.
        """
        await self.store.listen(REVOKED_CHANNEL, self._heard)

    def _heard(self, payload: str | None) -> None:
        if payload == SESSION_ENDED:  # a session, not a key: keep the keys
            self.grants.changed()
        else:
            self.forget()

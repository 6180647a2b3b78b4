"""Conformance: scoped tokens, kept by the SHA-256 of their secret and tied to the key that
minted them.
"""

from __future__ import annotations

import hashlib

from jobpulse.storage.store import ApiKey, JobStore, StoredKey
from jobpulse.storage.tokens_store import FoundToken
from jobpulse.tokens.rules import Scope
from tests.storage.conftest import T0, seconds

HOUR = seconds(3600)
SCOPE = Scope(job_type="agent", metadata={"team": "search", "tier": ""})


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def issuing_key(store: JobStore, name: str = "issuer") -> StoredKey:
    """A stored, active key of alice's, named `name`."""
    key = ApiKey(
        id=f"key-{name}",
        prefix=f"jp_{name}"[:10],
        organization_id="org-a",
        user_id="alice",
        is_admin=False,
        name=name,
        created_at=T0,
        revoked_at=None,
    )
    stored = StoredKey(key, sha(name))
    await store.insert_key(stored)
    return stored


async def test_insert_token_of_an_active_key(store: JobStore) -> None:
    key = await issuing_key(store)
    assert await store.insert_token(sha("t1"), key.key_hash, SCOPE, T0, T0 + HOUR)
    assert await store.find_token(sha("t1")) == FoundToken(SCOPE, T0 + HOUR, key.key_hash)
    assert not await store.insert_token(sha("t2"), sha("no such key"), SCOPE, T0, T0 + HOUR)
    assert await store.find_token(sha("t2")) is None


async def test_insert_token_of_a_revoked_key_is_refused(store: JobStore) -> None:
    key = await issuing_key(store)
    await store.revoke_key(key.key.id, T0)
    assert not await store.insert_token(sha("t1"), key.key_hash, SCOPE, T0, T0 + HOUR)
    assert await store.find_token(sha("t1")) is None


async def test_insert_token_deletes_the_expired_ones_on_the_way(store: JobStore) -> None:
    key = await issuing_key(store)
    assert await store.insert_token(sha("short"), key.key_hash, SCOPE, T0, T0 + HOUR)
    assert await store.insert_token(sha("long"), key.key_hash, SCOPE, T0, T0 + 3 * HOUR)
    later = T0 + 2 * HOUR
    assert await store.insert_token(sha("new"), key.key_hash, SCOPE, later, later + HOUR)
    assert await store.find_token(sha("short")) is None  # expired: deleted
    assert await store.find_token(sha("long")) == FoundToken(SCOPE, T0 + 3 * HOUR, key.key_hash)
    assert await store.find_token(sha("new")) == FoundToken(SCOPE, later + HOUR, key.key_hash)


async def test_find_token_expired_or_not_with_its_key(store: JobStore) -> None:
    first, second = await issuing_key(store, "first"), await issuing_key(store, "second")
    one_job = Scope(job_id="job-1")
    await store.insert_token(sha("a"), first.key_hash, one_job, T0, T0 + seconds(1))
    await store.insert_token(sha("b"), second.key_hash, SCOPE, T0, T0 + HOUR)
    # no clock: a token past its expiry is still found (its reader decides)
    assert await store.find_token(sha("a")) == FoundToken(one_job, T0 + seconds(1), first.key_hash)
    assert await store.find_token(sha("b")) == FoundToken(SCOPE, T0 + HOUR, second.key_hash)
    assert await store.find_token(sha("c")) is None

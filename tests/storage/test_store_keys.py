"""Conformance: API keys, dashboard sessions, and the store itself (ping, traffic, close)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime

import pytest

from jobpulse.config import Settings
from jobpulse.errors import UnavailableError
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.store import (
    REVOKED_CHANNEL,
    SESSION_ENDED,
    ApiKey,
    JobStore,
    SessionKey,
    StoredKey,
)
from tests.storage.conftest import ALICE, T0, listening, new_job, seconds, until

HOUR = seconds(3600)


def stored_key(name: str, at: datetime = T0, admin: bool = False) -> StoredKey:
    """A key named `name` for alice, stored by the SHA-256 of its secret."""
    key = ApiKey(
        id=f"key-{name}",
        prefix=f"jp_{name}"[:10],
        organization_id="org-a",
        user_id="alice",
        is_admin=admin,
        name=name,
        created_at=at,
        revoked_at=None,
    )
    return StoredKey(key, hashlib.sha256(name.encode()).hexdigest())


async def test_insert_key_stores_it_as_given(store: JobStore) -> None:
    key = stored_key("one", admin=True)
    await store.insert_key(key)
    assert await store.list_keys() == [key]
    assert await store.find_active_key(key.key_hash) == key


async def test_find_active_key_by_its_hash(store: JobStore) -> None:
    kept, revoked = stored_key("kept"), stored_key("revoked")
    for key in (kept, revoked):
        await store.insert_key(key)
    await store.revoke_key(revoked.key.id, T0)
    assert await store.find_active_key(kept.key_hash) == kept
    assert await store.find_active_key(revoked.key_hash) is None
    assert await store.find_active_key(stored_key("unknown").key_hash) is None


async def test_list_keys_oldest_first(store: JobStore) -> None:
    later, earlier = stored_key("later", T0 + HOUR), stored_key("earlier", T0)
    for key in (later, earlier):
        await store.insert_key(key)
    assert await store.list_keys() == [earlier, later]


async def test_count_active_keys(store: JobStore) -> None:
    assert await store.count_active_keys() == 0
    for name in ("a", "b", "c"):
        await store.insert_key(stored_key(name))
    await store.revoke_key("key-b", T0)
    assert await store.count_active_keys() == 2


async def test_revoke_key_once(store: JobStore) -> None:
    key = stored_key("one")
    await store.insert_key(key)
    assert await store.revoke_key(key.key.id, T0 + HOUR)
    assert not await store.revoke_key(key.key.id, T0 + 2 * HOUR)
    assert not await store.revoke_key("key-unknown", T0)
    assert await store.find_active_key(key.key_hash) is None
    [listed] = await store.list_keys()
    assert listed.key.revoked_at == T0 + HOUR


async def test_start_session_of_an_active_key(store: JobStore) -> None:
    key = stored_key("one")
    await store.insert_key(key)
    assert await store.start_session("s" * 64, key.key_hash, T0, T0 + HOUR)
    assert not await store.start_session("t" * 64, stored_key("none").key_hash, T0, T0 + HOUR)
    await store.revoke_key(key.key.id, T0)
    assert not await store.start_session("u" * 64, key.key_hash, T0, T0 + HOUR)


async def test_find_session_while_it_lives(store: JobStore) -> None:
    key = stored_key("one", admin=True)
    await store.insert_key(key)
    await store.start_session("s" * 64, key.key_hash, T0, T0 + HOUR)
    found = await store.find_session("s" * 64, T0 + seconds(1))
    assert found == SessionKey("org-a", "alice", True, key.key_hash)
    assert await store.find_session("s" * 64, T0 + HOUR) is None  # expired
    assert await store.find_session("x" * 64, T0) is None
    await store.revoke_key(key.key.id, T0)
    assert await store.find_session("s" * 64, T0 + seconds(1)) is None  # its key revoked


async def test_end_session_once(store: JobStore) -> None:
    key = stored_key("one")
    await store.insert_key(key)
    await store.start_session("s" * 64, key.key_hash, T0, T0 + HOUR)
    assert await store.end_session("s" * 64, T0 + seconds(1))
    assert not await store.end_session("s" * 64, T0 + seconds(2))
    assert await store.find_session("s" * 64, T0 + seconds(3)) is None


async def test_active_keys_among_hashes(store: JobStore) -> None:
    keys = [stored_key(name) for name in ("a", "b", "c")]
    for key in keys:
        await store.insert_key(key)
    await store.revoke_key("key-b", T0)
    hashes = [key.key_hash for key in keys] + ["0" * 64]
    assert await store.active_keys(hashes) == {keys[0].key_hash, keys[2].key_hash}
    assert await store.active_keys([]) == set()
    many = [f"{i:064x}" for i in range(1200)] + [keys[0].key_hash]  # past one IN list
    assert await store.active_keys(many) == {keys[0].key_hash}


async def test_live_sessions_among_ids(store: JobStore) -> None:
    for name in ("a", "b"):
        await store.insert_key(stored_key(name))
    await store.start_session("1" * 64, stored_key("a").key_hash, T0, T0 + HOUR)
    await store.start_session("2" * 64, stored_key("a").key_hash, T0, T0 + seconds(10))
    await store.start_session("3" * 64, stored_key("b").key_hash, T0, T0 + HOUR)
    await store.start_session("4" * 64, stored_key("a").key_hash, T0, T0 + HOUR)
    await store.end_session("4" * 64, T0)
    await store.revoke_key("key-b", T0)
    ids = [digit * 64 for digit in "12345"]
    assert await store.live_sessions(ids, T0 + seconds(20)) == {"1" * 64}


async def test_listen_hears_what_other_processes_announce(store: JobStore, other: JobStore) -> None:
    key = stored_key("one")
    await other.insert_key(key)
    await other.start_session("s" * 64, key.key_hash, T0, T0 + HOUR)
    async with listening(store, REVOKED_CHANNEL) as heard:
        await other.end_session("s" * 64, T0)
        await other.revoke_key(key.key.id, T0)
        if store.pushes_events:
            await until(lambda: len(heard) == 3)
            assert heard == [None, SESSION_ENDED, key.key.id]
        else:  # nothing announces: `listen` returned at once
            await asyncio.sleep(0.2)
            assert heard == []


async def test_ping_answers_once_the_database_does(store: JobStore, database_url: str) -> None:
    await store.ping()
    if database_url.startswith("postgresql"):
        gone = "postgresql://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
    else:
        gone = "sqlite:///" + database_url.removeprefix("sqlite:///") + ".missing/jobpulse.db"
    unreachable = open_store(Settings(database_url=gone))
    try:
        with pytest.raises(UnavailableError):
            await unreachable.ping()
    finally:
        await unreachable.close()


async def test_traffic_tells_of_queued_changes(store: JobStore) -> None:
    traffic = store.traffic
    assert not traffic.recent()
    assert not traffic.waiting()
    await store.create(new_job(), None)
    assert traffic.recent()
    assert not traffic.waiting()


async def test_upkeep_is_not_traffic(store: JobStore) -> None:
    """The server's own claims poll every second or so: counted as changes, they kept an idle
    server busy for ever, and its long reads, prunes and bulk actions gave way to nothing.
    """
    traffic = store.traffic
    for _ in range(3):
        assert await store.claim_outbox(T0, T0 + HOUR, 10, None) == []
        assert await store.claim_batches(T0, T0, 10, 60.0) == []
    assert not traffic.recent()
    assert not traffic.waiting()
    # changes and upkeep queued together: once all are done, none is counted as waiting
    changes = [store.create(new_job(), None) for _ in range(10)]
    claims = [store.claim_outbox(T0, T0 + HOUR, 10, None) for _ in range(10)]
    await asyncio.gather(*changes, *claims)
    assert traffic.recent()
    assert not traffic.waiting()


async def test_close_finishes_queued_writes(database_url: str) -> None:
    closing = open_store(Settings(database_url=database_url))
    job = new_job()
    writes = [asyncio.create_task(closing.create(new_job(), None)) for _ in range(20)]
    writes.append(asyncio.create_task(closing.create(job, None)))
    await asyncio.sleep(0)  # queued, not yet committed
    await closing.close()
    assert all(made for _job, made in await asyncio.gather(*writes))
    reopened = open_store(Settings(database_url=database_url))
    try:
        assert await reopened.get(ALICE, job.id) == job
    finally:
        await reopened.close()

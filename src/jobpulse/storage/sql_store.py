"""The JobStore on SQL: each operation is one crossing to the database, by the statements of
this package, run by the `Database` of the URL (a SQLite file or PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from jobpulse.batches.rules import BatchRef
from jobpulse.config import Settings
from jobpulse.domain import Actor, Job, JobEvent, JobStatus, OutboxMessage, Plan
from jobpulse.listing import JobFilter, Page
from jobpulse.metrics import Gauges
from jobpulse.stats.windows import Stats, Window
from jobpulse.storage import (
    attempts,
    batches,
    claims,
    events,
    keys,
    notify,
    outbox,
    repository,
    retention,
    rollups,
    sessions,
    stats,
    steps,
    sweeps,
)
from jobpulse.storage.alerts import SqlAlertStore
from jobpulse.storage.bulk import SqlBulkStore
from jobpulse.storage.creations import Creation
from jobpulse.storage.engine import Database
from jobpulse.storage.group_commit import Traffic
from jobpulse.storage.store import FEED_CHANNEL, ApiKey, JobStore, Planner, SessionKey, StoredKey
from jobpulse.storage.tokens import SqlTokensStore
from jobpulse.storage.transitions import Transition
from jobpulse.storage.urls import backend_of, database_url
from jobpulse.storage.usage import SqlUsageStore
from jobpulse.storage.views import SqlViewStore
from jobpulse.sweeper.rules import StaleLimits

_KEY_FIELDS = tuple(field.name for field in fields(ApiKey))


def open_store(settings: Settings) -> SqlJobStore:
    """The store of the database `settings` name (already migrated)."""
    return SqlJobStore(Database(settings))


def served(url: str, processes: int = 1) -> AbstractContextManager[None]:
    """Held while `serve` serves the database at `url` with `processes` worker processes: a
    SQLite file by one process at a time (AlreadyServedError for a second, ValidationError
    for more than one worker), PostgreSQL by any number of replicas and workers.
    """
    return backend_of(url).served(database_url(url), processes)


class SqlJobStore(
    SqlAlertStore, SqlUsageStore, SqlTokensStore, SqlBulkStore, SqlViewStore, JobStore
):
    """The JobStore of one SQL database (see storage/store.py for each operation)."""

    def __init__(self, database: Database) -> None:
        #: The database's connections and writer (tests and benchmarks reach SQL through it).
        self.database = database

    async def create(self, job: Job, idempotency_key: str | None) -> tuple[Job, bool]:
        return await self.database.submit(Creation(job, idempotency_key))

    async def create_batch_job(
        self, job: Job, idempotency_key: str | None, ref: BatchRef
    ) -> tuple[Job, bool]:
        return await self.database.write(batches.insert_batch_job, job, idempotency_key, ref)

    async def apply(self, actor: Actor, job_id: str, planner: Planner) -> tuple[Job, Plan]:
        return await self.database.submit(Transition(actor, job_id, planner))

    async def get(self, actor: Actor, job_id: str) -> Job:
        return await self.database.read(repository.get_job, actor, job_id)

    async def delete(self, actor: Actor, job_id: str) -> None:
        await self.database.write_on(job_id, repository.delete_job, actor, job_id)

    async def list_jobs(self, actor: Actor, query: JobFilter, page: Page) -> list[Job]:
        return await self.database.scan(repository.list_jobs, actor, query, page)

    async def count_jobs(self, actor: Actor, query: JobFilter) -> dict[JobStatus, int]:
        return await self.database.scan(repository.count_jobs, actor, query)

    async def history(self, actor: Actor, job_id: str) -> list[JobEvent]:
        return await self.database.read(repository.list_events, actor, job_id)

    async def record_step(
        self, actor: Actor, job_id: str, step: dict[str, Any], message: OutboxMessage | None
    ) -> dict[str, Any]:
        return await self.database.write_on(
            job_id, repository.for_visible_job, actor, job_id, steps.record_step, step, message
        )

    async def list_steps(self, actor: Actor, job_id: str) -> list[dict[str, Any]]:
        return await self.database.read(repository.for_visible_job, actor, job_id, steps.list_steps)

    async def list_attempts(self, actor: Actor, job_id: str) -> list[dict[str, Any]]:
        return await self.database.read(
            repository.for_visible_job, actor, job_id, attempts.list_attempts
        )

    async def requeue_callback(self, actor: Actor, job_id: str, now: datetime) -> str:
        return await self.database.write_on(
            job_id, repository.for_visible_job, actor, job_id, outbox.requeue_callback, now
        )

    async def claim_outbox(
        self,
        now: datetime,
        lease_until: datetime,
        limit: int,
        shares: claims.Shares | None,
        recorded: Sequence[attempts.Outcome] = (),
    ) -> list[outbox.Claimed]:
        if recorded:  # attempts recorded are changes, as record_attempts counts them
            return await self.database.write(
                attempts.record_and_claim, recorded, now, lease_until, limit, shares
            )
        return await self.database.write_upkeep(claims.claim_due, now, lease_until, limit, shares)

    async def record_attempts(self, outcomes: Sequence[attempts.Outcome]) -> None:
        await self.database.submit(attempts.Recording(outcomes))

    async def sweep_due(
        self, now: datetime, planner: Planner, limit: int, stale: StaleLimits | None
    ) -> list[tuple[Job, Plan]]:
        return await self.database.write_upkeep(sweeps.sweep, now, planner, limit, stale)

    async def count_old(self, cutoff: datetime) -> dict[str, int]:
        return await self.database.read(retention.count_old, cutoff)

    async def prune_step(self, cutoff: datetime, limit: int) -> retention.Pruned:
        traffic = self.database.traffic
        return await self.database.write_background(retention.prune_batch, cutoff, limit, traffic)

    async def window_stats(self, actor: Actor, query: JobFilter, window: Window) -> Stats:
        return await self.database.paced_scan(stats.window_stats, actor, query, window)

    async def fold_rollups(self) -> int:
        return await self.database.write_background(rollups.fold)

    async def drop_empty_rollups(self) -> int:
        return await self.database.write_background(rollups.drop_empty)

    async def gauges(self) -> Gauges:
        return await self.database.read(stats.gauges)

    async def claim_batches(
        self, due_by: datetime, now: datetime, limit: int, lease_s: float
    ) -> list[batches.Claimed]:
        return await self.database.write_upkeep(batches.claim, due_by, now, limit, lease_s)

    async def record_batch_poll(
        self, actor: Actor, job_id: str, planner: Planner, poll: batches.Polled
    ) -> tuple[Job, Plan]:
        return await self.database.write_on(
            job_id, batches.record_poll, actor, job_id, planner, poll
        )

    async def poll_batch_soon(self, job_id: str, now: datetime) -> None:
        await self.database.write_on(job_id, batches.poll_soon, job_id, now)

    async def feed_start(self) -> events.Start:
        return await self.database.read(events.start)

    async def events_after(
        self,
        position: events.Position,
        limit: int,
        actor: Actor | None = None,
        query: JobFilter | None = None,
    ) -> list[events.Happened]:
        return await self.database.read(events.after, position, limit, actor, query)

    async def beats_after(self, since: datetime, limit: int) -> list[Job]:
        return await self.database.read(events.beats_after, since, limit)

    @property
    def pushes_events(self) -> bool:
        return self.database.announces

    async def announce_events(self) -> None:
        if self.database.announces:
            await self.database.write(notify.announce, FEED_CHANNEL, "")

    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        await self.database.listen(channel, callback)

    async def insert_key(self, key: StoredKey) -> None:
        values = asdict(key.key) | {"key_hash": key.key_hash}
        await self.database.write(keys.insert_key, values)

    async def find_active_key(self, key_hash: str) -> StoredKey | None:
        row = await self.database.read(keys.find_active_key, key_hash)
        return None if row is None else _stored_key(row)

    async def list_keys(self) -> list[StoredKey]:
        return [_stored_key(row) for row in await self.database.read(keys.list_keys)]

    async def count_active_keys(self) -> int:
        return await self.database.read(keys.count_active_keys)

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        return await self.database.write(keys.revoke_key, key_id, at)

    async def start_session(
        self, session_id: str, key_hash: str, now: datetime, expires_at: datetime
    ) -> bool:
        return await self.database.write(
            sessions.start_session, session_id, key_hash, now, expires_at
        )

    async def find_session(self, session_id: str, now: datetime) -> SessionKey | None:
        row = await self.database.read(sessions.find_session, session_id, now)
        return None if row is None else SessionKey(*row)

    async def end_session(self, session_id: str, now: datetime) -> bool:
        return await self.database.write(sessions.end_session, session_id, now)

    async def active_keys(self, key_hashes: Collection[str]) -> set[str]:
        return await self.database.read(sessions.active_keys, key_hashes)

    async def live_sessions(self, session_ids: Collection[str], now: datetime) -> set[str]:
        return await self.database.read(sessions.live_sessions, session_ids, now)

    async def ping(self) -> None:
        await self.database.read(_ping)

    @property
    def traffic(self) -> Traffic:
        return self.database.traffic

    async def close(self) -> None:
        await self.database.close()


def _stored_key(row: Any) -> StoredKey:
    return StoredKey(ApiKey(**{name: getattr(row, name) for name in _KEY_FIELDS}), row.key_hash)


def _ping(connection: Connection) -> None:
    connection.exec_driver_sql("SELECT 1")

"""The JobStore: every operation jobpulse asks of its database, named and typed.

Its parameters and results are jobpulse's own types (domain records, the dataclasses of
this package), never a SQLAlchemy connection or row, so that what is above storage cannot
tell, and need not know, which database holds the jobs. `open_store` gives the store of a
database URL (storage/sql_store.py runs these operations on SQLite or PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from jobpulse.batches.rules import BatchRef
from jobpulse.domain import Actor, Job, JobEvent, JobStatus, OutboxMessage, Plan
from jobpulse.listing import JobFilter, Page
from jobpulse.metrics import Gauges
from jobpulse.stats.windows import Stats, Window
from jobpulse.storage.alerts_store import AlertStore
from jobpulse.storage.attempts import Outcome
from jobpulse.storage.batches import Claimed as ClaimedBatch
from jobpulse.storage.batches import Polled
from jobpulse.storage.bulk_store import BulkStore
from jobpulse.storage.claims import Shares
from jobpulse.storage.events import Happened, Position, Start
from jobpulse.storage.group_commit import Traffic
from jobpulse.storage.outbox import Claimed as ClaimedMessage
from jobpulse.storage.retention import Pruned
from jobpulse.storage.tokens_store import TokensStore
from jobpulse.storage.usage_store import UsageStore
from jobpulse.storage.views_store import ViewStore
from jobpulse.sweeper.rules import StaleLimits

#: The channel on which a revoked key's id, or SESSION_ENDED, is announced.
REVOKED_CHANNEL = "jobpulse_key_revoked"
#: The announcement on REVOKED_CHANNEL of a dashboard session ended (signed out), not a key.
SESSION_ENDED = "session"

#: The channel on which processes announce new history events (see `announce_events`).
FEED_CHANNEL = "jobpulse_events"

#: What plans a change of a job from the job as it is (the rules of jobpulse.domain).
Planner = Callable[[Job], Plan]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed (the secret itself is shown once, at creation)."""

    id: str
    prefix: str
    organization_id: str
    user_id: str
    is_admin: bool
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """An API key as stored: with the hash of its secret, never the secret."""

    key: ApiKey
    key_hash: str


@dataclass(frozen=True, slots=True)
class SessionKey:
    """The key a live dashboard session stands on."""

    organization_id: str
    user_id: str
    is_admin: bool
    key_hash: str


class JobStore(AlertStore, UsageStore, TokensStore, BulkStore, ViewStore, Protocol):
    """The database of jobs, their history, steps, webhooks, figures, batches and keys."""

    # Jobs ----------------------------------------------------------------------------------

    async def create(self, job: Job, idempotency_key: str | None) -> tuple[Job, bool]:
        """Store a new job and its first event; with a key already used by the job's owner,
        the job made with it. The job, and whether it is new.
        """
        ...

    async def create_batch_job(
        self, job: Job, idempotency_key: str | None, ref: BatchRef
    ) -> tuple[Job, bool]:
        """Like `create`, and start following the job's LLM batch."""
        ...

    async def apply(self, actor: Actor, job_id: str, planner: Planner) -> tuple[Job, Plan]:
        """Lock the job the actor may see, plan its change, write the plan exactly as given
        (values, event, webhooks); the job as it now is, and the plan. NotFoundError if the
        actor may not see it; a rule's error (JobPulseError) writes nothing.
        """
        ...

    async def get(self, actor: Actor, job_id: str) -> Job:
        """The job, if the actor may see it (NotFoundError otherwise)."""
        ...

    async def delete(self, actor: Actor, job_id: str) -> None:
        """Delete the job with its history, steps and webhooks."""
        ...

    async def list_jobs(self, actor: Actor, query: JobFilter, page: Page) -> list[Job]:
        """One page of the jobs the actor may see under `query` (a long read)."""
        ...

    async def count_jobs(self, actor: Actor, query: JobFilter) -> dict[JobStatus, int]:
        """How many of those jobs there are, by status (a long read)."""
        ...

    async def history(self, actor: Actor, job_id: str) -> list[JobEvent]:
        """The job's history, oldest first, rejected attempts included."""
        ...

    # Steps and callbacks -------------------------------------------------------------------

    async def record_step(
        self,
        actor: Actor,
        job_id: str,
        step: dict[str, Any],
        message: OutboxMessage | None,
    ) -> dict[str, Any]:
        """Store the step (`step_id`, `status`, `metadata`, `created_at`) and queue its
        webhook; a step id seen before gives its first record and queues nothing.
        """
        ...

    async def list_steps(self, actor: Actor, job_id: str) -> list[dict[str, Any]]:
        """The job's steps, oldest first."""
        ...

    async def list_attempts(self, actor: Actor, job_id: str) -> list[dict[str, Any]]:
        """Every delivery attempt of the job's webhooks, oldest first."""
        ...

    async def requeue_callback(self, actor: Actor, job_id: str, now: datetime) -> str:
        """Make the job's callback due again; its webhook-id."""
        ...

    async def claim_outbox(
        self,
        now: datetime,
        lease_until: datetime,
        limit: int,
        shares: Shares | None,
        recorded: Sequence[Outcome] = (),
    ) -> list[ClaimedMessage]:
        """Hold up to `limit` due webhooks until `lease_until` (see claims.claim_due), having
        recorded the attempts `recorded` in the same transaction (see `record_attempts`).
        """
        ...

    async def record_attempts(self, outcomes: Sequence[Outcome]) -> None:
        """Keep each attempt and move its webhook on."""
        ...

    # The sweeper, retention and figures ----------------------------------------------------

    async def sweep_due(
        self, now: datetime, planner: Planner, limit: int, stale: StaleLimits | None
    ) -> list[tuple[Job, Plan]]:
        """Apply `planner` to every job past its deadline or silent too long; the changes
        that did something.
        """
        ...

    async def count_old(self, cutoff: datetime) -> dict[str, int]:
        """What a prune to `cutoff` would remove, by kind."""
        ...

    async def prune_step(self, cutoff: datetime, limit: int) -> Pruned:
        """Remove up to `limit` ended jobs (and finished webhooks) older than `cutoff`, in a
        write that waits for the changes queued and makes way for those that arrive.
        """
        ...

    async def window_stats(self, actor: Actor, query: JobFilter, window: Window) -> Stats:
        """The figures of the actor's jobs created in `window` under `query` (a long read,
        paced while changes are being written: see storage/scans.py's Pacer).
        """
        ...

    async def fold_rollups(self) -> int:
        """Fold a bounded part of the waiting stats deltas into the rollups (a background
        write); how many rollup rows changed.
        """
        ...

    async def drop_empty_rollups(self) -> int:
        """Delete rollup rows that count no job."""
        ...

    async def gauges(self) -> Gauges:
        """Active and stuck jobs, webhooks waiting, batches followed."""
        ...

    # LLM batches ---------------------------------------------------------------------------

    async def claim_batches(
        self, due_by: datetime, now: datetime, limit: int, lease_s: float
    ) -> list[ClaimedBatch]:
        """Hold up to `limit` followed batches due by `due_by` for `lease_s`."""
        ...

    async def record_batch_poll(
        self, actor: Actor, job_id: str, planner: Planner, poll: Polled
    ) -> tuple[Job, Plan]:
        """`apply` the poll's change, then schedule the next poll or stop following."""
        ...

    async def poll_batch_soon(self, job_id: str, now: datetime) -> None:
        """Make the job's batch due now."""
        ...

    # The live feed -------------------------------------------------------------------------

    async def feed_start(self) -> Start:
        """Where the history ends now: its position, and what was committed before now
        that may still come after it.
        """
        ...

    async def events_after(
        self,
        position: Position,
        limit: int,
        actor: Actor | None = None,
        query: JobFilter | None = None,
    ) -> list[Happened]:
        """Up to `limit` applied events after `position`, oldest first (of the jobs the actor
        may see under `query`, given one).
        """
        ...

    async def beats_after(self, since: datetime, limit: int) -> list[Job]:
        """Jobs that sent a heartbeat after `since`, the earliest first."""
        ...

    @property
    def pushes_events(self) -> bool:
        """Other processes' events are announced (`listen` on FEED_CHANNEL hears them);
        without, a feed finds them by polling.
        """
        ...

    async def announce_events(self) -> None:
        """Tell every process following the feed that events were written."""
        ...

    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Call `callback` for every announcement on `channel` from any process, until
        cancelled; returns at once where the database announces nothing.
        """
        ...

    # Keys and dashboard sessions -----------------------------------------------------------

    async def insert_key(self, key: StoredKey) -> None:
        """Store a new key."""
        ...

    async def find_active_key(self, key_hash: str) -> StoredKey | None:
        """The unrevoked key with this hash, if any."""
        ...

    async def list_keys(self) -> list[StoredKey]:
        """Every key, oldest first."""
        ...

    async def count_active_keys(self) -> int:
        """How many keys are not revoked."""
        ...

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Revoke the key (every process following revocations hears of it); whether an
        active one was revoked.
        """
        ...

    async def start_session(
        self, session_id: str, key_hash: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Store a session of the active key with this hash; False if there is none."""
        ...

    async def find_session(self, session_id: str, now: datetime) -> SessionKey | None:
        """The key of the live session with this id, if any."""
        ...

    async def end_session(self, session_id: str, now: datetime) -> bool:
        """End the session (signed out); whether a live one was ended."""
        ...

    async def active_keys(self, key_hashes: Collection[str]) -> set[str]:
        """Which of these key hashes belong to unrevoked keys."""
        ...

    async def live_sessions(self, session_ids: Collection[str], now: datetime) -> set[str]:
        """Which of these sessions are live."""
        ...

    # The store itself ----------------------------------------------------------------------

    async def ping(self) -> None:
        """Answer once the database does (UnavailableError if it cannot)."""
        ...

    @property
    def traffic(self) -> Traffic:
        """The writer's load, for background work to make way for changes."""
        ...

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        ...

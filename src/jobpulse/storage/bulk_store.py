"""The storage operations of bulk actions (see storage/bulk.py for their SQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from jobpulse.domain import Actor, Job, Plan
from jobpulse.listing import JobFilter
from jobpulse.storage.bulk import Cursor, Stepped


class BulkStore(Protocol):
    """Acting on every job a filter matches, a bounded step at a time."""

    async def cancel_step(
        self,
        actor: Actor,
        query: JobFilter,
        after: Cursor | None,
        limit: int,
        planner: Callable[[Job], Plan],
    ) -> Stepped:
        """Apply `planner` to the active jobs among the next `limit` the actor may see under
        `query` after `after`, in one write that makes way for other changes.
        """
        ...

    async def resend_step(
        self, actor: Actor, query: JobFilter, after: Cursor | None, limit: int, now: datetime
    ) -> Stepped:
        """Make the callbacks of the ended jobs among the next `limit` due again."""
        ...

    async def count_resendable(self, actor: Actor, query: JobFilter) -> tuple[int, int]:
        """How many jobs match, and how many of them a re-send would send (a long read)."""
        ...

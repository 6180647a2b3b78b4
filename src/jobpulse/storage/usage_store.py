"""The operations of LLM usage on the JobStore (see storage/usage.py for SQL)."""

from __future__ import annotations

from typing import Protocol

from jobpulse.domain import Actor, Job
from jobpulse.listing import JobFilter
from jobpulse.stats.windows import Window
from jobpulse.usage.figures import UsageFigures
from jobpulse.usage.rules import Call


class UsageStore(Protocol):
    """LLM calls of jobs: recorded with the job's totals, and listed."""

    async def record_usage(
        self, actor: Actor, job_id: str, call: Call, fresh: bool = False
    ) -> tuple[Job, Call, bool]:
        """Store the call and add it to the job's totals in one transaction (a call id the
        job has already recorded adds nothing: its first record is returned; `fresh`: the
        id was just made, none can have it); a call on an ended job is marked late and noted
        in its history. The job as it now is, the call as stored, and whether it is new.
        NotFoundError if the actor may not see the job.
        """
        ...

    async def list_usage(self, actor: Actor, job_id: str) -> list[Call]:
        """The job's calls, in the order they were recorded."""
        ...

    async def has_usage(self, organization_id: str, window: Window) -> bool:
        """Whether the organization recorded any LLM call in `window` (a short read, on an
        index: figures skip their long read without one).
        """
        ...

    async def usage_stats(self, actor: Actor, query: JobFilter, window: Window) -> UsageFigures:
        """The LLM calls recorded in `window` of the actor's jobs under `query` (a `model`
        filter keeps that model's calls), added up (a long read).
        """
        ...

"""Reading a window's figures (`GET /v1/stats`, the dashboard's overview) through a manager:
in the turns long reads take (gate.py), from the rollups and a scan of the edges.
"""

from __future__ import annotations

from jobpulse.domain import Actor
from jobpulse.jobs.manager import JobManager
from jobpulse.listing import JobFilter
from jobpulse.stats.windows import Stats, Window
from jobpulse.telemetry import trace_method


class Figures:
    """The figures of the jobs a manager keeps."""

    def __init__(self, jobs: JobManager) -> None:
        self._jobs = jobs

    @trace_method
    async def stats(
        self, actor: Actor, query: JobFilter | None = None, window: Window | None = None
    ) -> Stats:
        """The figures of the actor's jobs created in `window` (the last 24 hours by the hour
        by default) under `query`.
        """
        window = window or Window.last_day(self._jobs.now())
        async with self._jobs.reads.turn(actor.organization_id):
            return await self._jobs.store.window_stats(actor, query or JobFilter(), window)

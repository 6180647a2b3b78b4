"""The pruner: what ended long ago removed in short batches that make way for the changes,
once (`jobpulse prune`) or, with JOBPULSE_RETENTION_DAYS, every hour in `serve`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from jobpulse.errors import ValidationError
from jobpulse.jobs.manager import JobManager
from jobpulse.storage.retention import KINDS

logger = logging.getLogger("jobpulse.sweeper")

#: How often `serve` prunes, when a retention is set.
PRUNE_INTERVAL_S = 3600.0


async def prune(
    jobs: JobManager, older_than: timedelta, *, dry_run: bool = False, batch: int = 100
) -> dict[str, int]:
    """Remove ended jobs (with history, steps and attempts) and finished webhooks older
    than `older_than`, `batch` rows at a time, each batch a short transaction of its own;
    how many rows of each kind went (or, `dry_run`, would go). Active jobs and undelivered
    webhooks stay. While changes keep coming in, it makes way for them (see
    `retention.prune_batch`) and pauses after each batch as long as the batch took.
    """
    if older_than < timedelta(0) or batch < 1:
        raise ValidationError("older_than must not be negative, batch at least 1")
    cutoff = jobs.now() - older_than
    if dry_run:
        return await jobs.store.count_old(cutoff)
    total = dict.fromkeys(KINDS, 0)
    traffic = jobs.store.traffic
    while True:
        began = time.monotonic()
        pruned = await jobs.store.prune_step(cutoff, batch)
        for kind, number in pruned.removed.items():
            total[kind] += number
        jobs.metrics.pruned(pruned.removed)
        if pruned.finished:
            return total
        if traffic.recent():  # share the database with the changes: half the time each
            await asyncio.sleep(time.monotonic() - began)


async def prune_forever(jobs: JobManager, retention_days: float) -> None:
    """Prune what is older than `retention_days`, then every hour, until cancelled."""
    while True:
        try:
            removed = await prune(jobs, timedelta(days=retention_days))
        except Exception:  # the database may be away for a while: keep going
            logger.exception("prune failed")
        else:
            if any(removed.values()):
                logger.info("pruned %s", ", ".join(f"{n} {k}" for k, n in removed.items()))
        await asyncio.sleep(PRUNE_INTERVAL_S)

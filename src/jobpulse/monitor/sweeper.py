"""The sweeper: every JOBPULSE_SWEEP_INTERVAL_S, expire what is past its deadline and find
jobs that stopped heartbeating or sit unchanged; and, with JOBPULSE_RETENTION_DAYS, the
hourly prune. Every replica may run one: rows are claimed with
SKIP LOCKED and changed by compare-and-set, so no job is ever transitioned twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from jobpulse.service import JobManager

logger = logging.getLogger("jobpulse.sweeper")


async def sweep_forever(jobs: JobManager, interval_s: float) -> None:
    """Sweep, then wait `interval_s`, until cancelled; a failed round is logged, not fatal."""
    while True:
        try:
            changed = await jobs.sweep()
        except Exception:  # the database may be away for a while: keep going
            logger.exception("sweep failed")
        else:
            for job, plan in changed:
                logger.info("sweeper: %s %s", job.id, plan.event.reason if plan.event else "")
        await asyncio.sleep(interval_s)


#: How often `serve` prunes, when a retention is set.
PRUNE_INTERVAL_S = 3600.0


async def prune_forever(jobs: JobManager, retention_days: float) -> None:
    """Prune what is older than `retention_days`, then every hour, until cancelled."""
    while True:
        try:
            removed = await jobs.prune(timedelta(days=retention_days))
        except Exception:  # the database may be away for a while: keep going
            logger.exception("prune failed")
        else:
            if any(removed.values()):
                logger.info("pruned %s", ", ".join(f"{n} {k}" for k, n in removed.items()))
        await asyncio.sleep(PRUNE_INTERVAL_S)


#: How often `serve` folds the stats deltas into the rollups, and drops emptied rollup rows.
FOLD_INTERVAL_S = 1.0
DROP_EMPTY_EVERY = 600


async def fold_forever(jobs: JobManager, interval_s: float = FOLD_INTERVAL_S) -> None:
    """Fold the stats deltas into the rollups (storage/rollups.py) every `interval_s`, and
    drop the rollup rows that count no job now and then, until cancelled.
    """
    rounds = 0
    while True:
        try:
            await jobs.fold_stats(drop_empty=rounds % DROP_EMPTY_EVERY == 0)
        except Exception:  # the database may be away for a while: keep going
            logger.exception("folding the stats rollups failed")
        rounds += 1
        await asyncio.sleep(interval_s)

"""The sweeper: every JOBPULSE_SWEEP_INTERVAL_S, expire what is past its deadline and find
running jobs that stopped heartbeating. Every replica may run one: rows are claimed with
SKIP LOCKED and changed by compare-and-set, so no job is ever transitioned twice.
"""

from __future__ import annotations

import asyncio
import logging

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

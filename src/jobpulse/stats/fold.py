"""The fold: the stats deltas each change writes are folded into the rollups (see
storage/rollups.py) in the background, every second in `serve`.
"""

from __future__ import annotations

import asyncio
import logging

from jobpulse.storage.store import JobStore

logger = logging.getLogger("jobpulse.sweeper")

#: How often `serve` folds the stats deltas into the rollups, and drops emptied rollup rows.
FOLD_INTERVAL_S = 1.0
DROP_EMPTY_EVERY = 600


async def fold_stats(store: JobStore, drop_empty: bool = False) -> int:
    """Fold every stats delta waiting into the rollups, in background writes of a bounded
    size; how many rollup rows changed. `drop_empty` then deletes rows that count no job.
    """
    total = 0
    while changed := await store.fold_rollups():
        total += changed
    if drop_empty:
        await store.drop_empty_rollups()
    return total


async def fold_forever(store: JobStore, interval_s: float = FOLD_INTERVAL_S) -> None:
    """Fold the stats deltas into the rollups every `interval_s`, and drop the rollup rows
    that count no job now and then, until cancelled.
    """
    rounds = 0
    while True:
        try:
            await fold_stats(store, drop_empty=rounds % DROP_EMPTY_EVERY == 0)
        except Exception:  # the database may be away for a while: keep going
            logger.exception("folding the stats rollups failed")
        rounds += 1
        await asyncio.sleep(interval_s)

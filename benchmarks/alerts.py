"""Alert rule evaluation: one round of RULES rules of one organization (failure rate over the
last hour and day, TTFT and duration p99, stuck jobs; a third of them on one user, which the
rollups do not keep: a scan) over jobs spread over 30 days, against one 24-hour figures read
of the organization (what /v1/stats and the overview read).
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from benchmarks.common import ORG, fresh_database
from benchmarks.stats import END, seed_spread
from jobpulse import Actor, JobManager, Settings
from jobpulse.alerts.evaluator import AlertEvaluator
from jobpulse.alerts.rules import Metric
from jobpulse.alerts.service import AlertRules
from jobpulse.stats.figures import Figures
from jobpulse.stats.windows import Window
from jobpulse.storage.sql_store import open_store

RULES = 100
ROUNDS = 5
INTERVAL_S = 60.0
#: Each rule's metric and window (seconds), in turn.
SHAPES = (
    (Metric.FAILURE_RATE, 3600.0),
    (Metric.FAILURE_RATE, 86400.0),
    (Metric.TTFT_P99_S, 3600.0),
    (Metric.DURATION_P99_S, 86400.0),
    (Metric.STUCK_JOBS, 3600.0),
)


async def measure(kind: str, count: int) -> dict[str, float]:
    """Seconds of one evaluation round (median of ROUNDS) and of one 24-hour figures read."""
    async with fresh_database(kind) as url:
        await seed_spread(url, count)
        now = [END]
        # The clock at the seed's end: the windows hold its last jobs.
        jobs = JobManager(open_store(Settings(database_url=url)), lambda: now[0])
        admin = Actor(ORG, "bench", is_admin=True)
        rules = AlertRules(jobs)
        for number in range(RULES):
            metric, window_s = SHAPES[number % len(SHAPES)]
            await rules.create(
                admin,
                name=f"rule {number}",
                metric=metric,
                window_s=window_s,
                above=0.5 if metric == Metric.FAILURE_RATE else 1e9,
                min_jobs=10,
                user_id="user-1" if number % 3 == 0 else None,
            )
        evaluator = AlertEvaluator(jobs, INTERVAL_S)
        rounds = []
        for _ in range(ROUNDS):
            now[0] += timedelta(seconds=INTERVAL_S)
            started = time.perf_counter()
            await evaluator.evaluate_due()
            rounds.append(time.perf_counter() - started)
        reads = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            await Figures(jobs).stats(admin, None, Window.last_day(now[0]))
            reads.append(time.perf_counter() - started)
        await jobs.close()
    return {"round": statistics.median(rounds), "read": statistics.median(reads)}

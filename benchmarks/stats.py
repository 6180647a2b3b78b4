"""`/v1/stats` over HTTP at 10 thousand and 1 million jobs spread over 30 days (a fifth each
created, pending, running, completed, failed; ended ones with durations, TTFTs and stop
reasons): the last 24 hours by the hour, 30 days by the day, and `/v1/jobs/count` with a
status filter, each p50 and p99 of sequential requests to `jobpulse serve`.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx

from benchmarks.common import (
    EPOCH,
    NO_STALE,
    ORG,
    SEED_STATUSES,
    STATUSES_JSON,
    admin_key,
    fresh_database,
    p99,
    run_seed,
)
from benchmarks.http import BIN, _free_port, _serve, _stop

SPAN_S = 30 * 86400
USERS = 20
SAMPLES = 30
END = datetime.fromtimestamp(EPOCH + SPAN_S, UTC)

_SQLITE_SEED = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
INSERT INTO jobs (id, organization_id, user_id, job_type, status, stop_reason, background,
                  metadata, created_at, updated_at, completed_at, ttft_ns, total_duration_ns)
SELECT printf('job-%012d', i), :org, 'user-' || (i % :users), 'job', s,
       CASE s WHEN 'completed' THEN 'end_turn' WHEN 'failed' THEN 'error' END, 0, '{}',
       ts, ts, CASE WHEN s IN ('completed', 'failed') THEN ts END,
       CASE WHEN s IN ('running', 'completed') THEN (i % 5000) * 1000000 END,
       CASE WHEN s IN ('completed', 'failed') THEN (i % 60000) * 1000000 END
FROM (SELECT i, json_extract(:statuses, '$[' || ((i / :users) % 5) || ']') AS s,
             printf('%s.000000', datetime(:epoch + CAST(i * :step AS INTEGER), 'unixepoch'))
             AS ts
      FROM n)
"""

_POSTGRES_SEED = """
INSERT INTO jobs (id, organization_id, user_id, job_type, status, stop_reason, background,
                  metadata, created_at, updated_at, completed_at, ttft_ns, total_duration_ns)
SELECT 'job-' || lpad(i::text, 12, '0'), $1, 'user-' || (i % $2), 'job', s,
       CASE s WHEN 'completed' THEN 'end_turn' WHEN 'failed' THEN 'error' END, false,
       '{}'::jsonb, ts, ts, CASE WHEN s IN ('completed', 'failed') THEN ts END,
       CASE WHEN s IN ('running', 'completed') THEN (i % 5000)::bigint * 1000000 END,
       CASE WHEN s IN ('completed', 'failed') THEN (i % 60000)::bigint * 1000000 END
FROM (SELECT i, ($3::text[])[1 + (i / $2) % 5] AS s, to_timestamp($4::float8 + i * $5::float8) AS ts
      FROM generate_series(0, $6 - 1) AS i) AS seeded
"""


async def seed_spread(url: str, count: int, span_s: float = SPAN_S, users: int = USERS) -> None:
    """Seed `count` jobs of `users` users, created evenly over `span_s` seconds from EPOCH
    (a fifth each created, pending, running, completed, failed).
    """
    step = span_s / count
    values = {"count": count, "org": ORG, "users": users, "statuses": STATUSES_JSON}
    await run_seed(
        url,
        (_SQLITE_SEED, values | {"epoch": EPOCH, "step": step}),
        (_POSTGRES_SEED, (ORG, users, list(SEED_STATUSES), EPOCH, step, count)),
    )


def _timed(client: httpx.Client, path: str, params: dict[str, str]) -> dict[str, float]:
    for _ in range(3):  # warm: caches, prepared statements
        answer = client.get(path, params=params)
        answer.raise_for_status()
        assert answer.json()["total"] > 0, f"{path} {params} found no job: a bad seed"
    took = []
    for _ in range(SAMPLES):
        began = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        took.append(time.perf_counter() - began)
    return {"p50": statistics.median(took), "p99": p99(took)}


QUERIES = {
    "stats 24h": (
        "/v1/stats",
        {"since": (END - timedelta(days=1)).isoformat(), "until": END.isoformat()},
    ),
    "stats 30d": (
        "/v1/stats",
        {
            "since": (END - timedelta(days=30)).isoformat(),
            "until": END.isoformat(),
            "bucket": "day",
        },
    ),
    "count status": ("/v1/jobs/count", {"status": "running"}),
}


async def measure(kind: str, count: int) -> dict[str, dict[str, float]]:
    """p50 and p99 (seconds) of each query at `count` jobs."""
    async with fresh_database(kind) as url:
        await seed_spread(url, count)
        secret = await admin_key(url)
        port = _free_port()
        command = [str(BIN / "jobpulse"), "serve", "--port", str(port), "--database-url", url]
        process: subprocess.Popen[bytes] = _serve(
            [*command, "--no-access-log"], f"http://127.0.0.1:{port}/healthz", NO_STALE
        )
        try:
            headers = {"Authorization": f"Bearer {secret}"}
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
            ) as client:
                return {name: _timed(client, *query) for name, query in QUERIES.items()}
        finally:
            _stop(process)

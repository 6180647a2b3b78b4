"""Fresh databases and seeded jobs for the benchmarks, written with the raw drivers."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import statistics
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from jobpulse.config import Settings
from jobpulse.keys import KeyManager
from jobpulse.storage import rollups
from jobpulse.storage.engine import run_in_transaction
from jobpulse.storage.migrate import upgrade
from jobpulse.storage.sql_store import open_store

POSTGRES_URL = os.environ.get(
    "JOBPULSE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ORG = "org-bench"
#: Seeded statuses cycle through these (the listing filters on one of them).
SEED_STATUSES = ("created", "pending", "running", "completed", "failed")
#: 2026-01-01T00:00:00Z; seeded jobs are created one millisecond apart from here.
EPOCH = 1_767_225_600

_SQLITE_SEED = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
INSERT INTO jobs (id, organization_id, user_id, job_type, status, background, metadata,
                  created_at, updated_at)
SELECT printf('job-%012d', i), :org, 'user-' || (i % :users), 'job',
       CASE WHEN :status IS NULL
            THEN json_extract(:statuses, '$[' || ((i / :users) % 5) || ']') ELSE :status END,
       0, '{}', ts, ts
FROM (SELECT i, printf('%s.%06d', datetime(:epoch + i / 1000, 'unixepoch'), (i % 1000) * 1000)
      AS ts FROM n)
"""

_POSTGRES_SEED = """
INSERT INTO jobs (id, organization_id, user_id, job_type, status, background, metadata,
                  created_at, updated_at)
SELECT 'job-' || lpad(i::text, 12, '0'), $1, 'user-' || (i % $2), 'job',
       coalesce($3, ($4::text[])[1 + (i / $2) % 5]), false, '{}'::jsonb,
       to_timestamp($5) + i * interval '1 millisecond',
       to_timestamp($5) + i * interval '1 millisecond'
FROM generate_series(0, $6 - 1) AS i
"""


def seeded_status(index: int, users: int) -> str:
    """The status `seed` gives its job number `index` when statuses cycle."""
    return SEED_STATUSES[(index // users) % len(SEED_STATUSES)]


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


async def run_seed(
    url: str, sqlite: tuple[str, dict[str, Any]], postgres: tuple[str, tuple[Any, ...]]
) -> None:
    """Run the seeding statement for the database at `url` (SQLite's with named parameters,
    PostgreSQL's with positional ones), enter the new jobs as stats deltas (the seed's raw
    INSERT writes none: jobpulse's own statements write them) and fold them (as an import
    would be folded before anyone looks: `serve` would fold them in the background while
    measured), then refresh the planner's statistics.
    """
    if url.startswith("sqlite"):
        connection = sqlite3.connect(sqlite_path(url))
        with connection:
            connection.execute(*sqlite)
        connection.close()
    else:
        pg = await asyncpg.connect(url)
        try:
            await pg.execute(postgres[0], *postgres[1])
        finally:
            await pg.close()
    await run_in_transaction(url, rollups.enter_jobs)  # the seed wrote no delta
    await run_in_transaction(url, rollups.fold, limit=None)
    if url.startswith("sqlite"):
        connection = sqlite3.connect(sqlite_path(url))
        connection.execute("ANALYZE")
        connection.close()
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("VACUUM ANALYZE jobs, job_rollups, job_rollup_deltas")
        await pg.execute("CHECKPOINT")  # the seed's pages written out now, not while measured
    finally:
        await pg.close()


#: The seeded statuses as a JSON array, for SQLite's json_extract.
STATUSES_JSON = str(list(SEED_STATUSES)).replace("'", '"')


async def seed(url: str, count: int, users: int, status: str | None = None) -> list[str]:
    """Insert `count` jobs (status fixed or cycling) and return their ids, oldest first."""
    values = {"count": count, "org": ORG, "users": users, "status": status}
    await run_seed(
        url,
        (_SQLITE_SEED, values | {"statuses": STATUSES_JSON, "epoch": EPOCH}),
        (_POSTGRES_SEED, (ORG, users, status, list(SEED_STATUSES), EPOCH, count)),
    )
    return [f"job-{i:012d}" for i in range(count)]


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def fresh_database(kind: str) -> AsyncIterator[str]:
    """A new, migrated, empty database of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="jobpulse-bench-") as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            await upgrade(url)
            yield url
        return
    name = f"jobpulse_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f"CREATE DATABASE {name}")
    try:
        url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
        await upgrade(url)
        yield url
    finally:
        await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def p99(samples: list[float]) -> float:
    """The 99th percentile of `samples`."""
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def admin_key(url: str, user_id: str = "admin", is_admin: bool = True) -> str:
    """A new admin key of ORG on the database at `url` (or, not `is_admin`, a member's)."""
    store = open_store(Settings(database_url=url))
    try:
        keys = KeyManager(store)
        _key, secret = await keys.create(organization_id=ORG, user_id=user_id, is_admin=is_admin)
        return secret
    finally:
        await store.close()


#: `serve` on seeded jobs: they were created long ago, and the sweeper is not to flag them
#: stale while a benchmark runs (its writes and events would be measured too).
NO_STALE = {"JOBPULSE_STALE_CREATED_S": "none", "JOBPULSE_STALE_PENDING_S": "none"}

"""A program embedding `JobManager` that leaves by `sys.exit` while its writes are in flight
(as a SIGTERM handler calling it does; `asyncio.run` then cancels every task, jobpulse's
writers too): `close()` in its `finally` still returns, the process exits at once and
cleanly, and every job a call returned is in the database.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobpulse import Settings
from jobpulse.storage.sql_store import open_store

PROGRAM = """
import asyncio, sys
from jobpulse import Actor, JobManager, Settings


async def main(url, stop_after):
    jobs = JobManager.from_settings(Settings(database_url=url))
    me = Actor(organization_id="acme", user_id="embedded")
    created = asyncio.Event()
    made = 0

    async def work():
        nonlocal made
        while True:
            job = await jobs.create_job(me, job_type="t")
            print("created", job.id, flush=True)
            made += 1
            created.set()
            await jobs.update_job(me, job.id, status="running")

    async def leave():
        while made < stop_after:
            created.clear()
            await created.wait()
        sys.exit(0)  # as a signal handler calling it does, between two of the loop's steps

    try:
        await asyncio.gather(leave(), *(work() for _ in range(16)))
    finally:
        await jobs.close()
        print("closed", flush=True)


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
#: Jobs created before each run is stopped.
STOPS = (1, 40, 300)


async def _stored_ids(database_url: str) -> set[str]:
    store = open_store(Settings(database_url=database_url))
    try:
        rows = await store.database.read(lambda c: c.exec_driver_sql("SELECT id FROM jobs").all())
        return {row.id for row in rows}
    finally:
        await store.close()


@pytest.mark.timeout(180)
def test_a_program_leaving_by_sys_exit_mid_write_closes_and_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    program = tmp_path / "embedded.py"
    program.write_text(PROGRAM)
    returned: set[str] = set()
    for stop_after in STOPS:
        began = time.monotonic()
        try:
            run = subprocess.run(
                [sys.executable, "-X", "faulthandler", str(program), database_url, str(stop_after)],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired as hung:
            raise AssertionError(f"the program did not leave: {hung.stderr!r}") from None
        assert run.returncode == 0, run.stderr
        assert "Fatal Python error" not in run.stderr, run.stderr
        lines = run.stdout.splitlines()
        assert lines[-1:] == ["closed"], f"close() did not return:\n{run.stderr}"
        made = [line.split()[1] for line in lines if line.startswith("created")]
        assert len(made) >= stop_after
        returned |= set(made)
        assert time.monotonic() - began < 30
    stored = asyncio.run(_stored_ids(database_url))
    assert returned <= stored, f"{len(returned - stored)} jobs a call returned are not stored"

"""A program embedding `JobManager` that leaves on SIGTERM the common way (a handler calling
`sys.exit`, so `asyncio.run` cancels every task, jobpulse's writers too) while its writes are
in flight: `close()` in its `finally` still returns, the process exits at once and cleanly,
and every job a call returned is in the database.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobpulse import Settings
from jobpulse.storage.sql_store import open_store

PROGRAM = """
import asyncio, signal, sys
from jobpulse import Actor, JobManager, Settings

signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))


async def main(url):
    jobs = JobManager.from_settings(Settings(database_url=url))
    me = Actor(organization_id="acme", user_id="embedded")

    async def work():
        while True:
            job = await jobs.create_job(me, job_type="t")
            sys.stdout.write(f"created {job.id}\\n")  # one call: the signal comes between calls
            sys.stdout.flush()
            await jobs.update_job(me, job.id, status="running")

    try:
        await asyncio.gather(*(work() for _ in range(16)))
    finally:
        await jobs.close()
        print("closed", flush=True)


asyncio.run(main(sys.argv[1]))
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
def test_a_program_leaving_on_sigterm_mid_write_closes_and_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    program = tmp_path / "embedded.py"
    program.write_text(PROGRAM)
    returned: set[str] = set()
    for stop_after in STOPS:
        run = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", str(program), database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        created = 0
        while created < stop_after:
            line = run.stdout.readline()
            assert line, f"the program ended early: {run.communicate()[1]}"
            created += line.startswith("created")
            returned.add(line.split()[1])
        run.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            rest, errors = run.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()
            rest, errors = run.communicate()
        took = time.monotonic() - sent
        assert took < 10, f"the program took {took:.0f} s to leave:\n{errors}"
        assert run.returncode == 0, errors
        assert "Fatal Python error" not in errors, errors
        lines = rest.splitlines()
        assert lines[-1:] == ["closed"], "close() did not return"
        returned |= {line.split()[1] for line in lines if line.startswith("created")}
    stored = asyncio.run(_stored_ids(database_url))
    assert returned <= stored, f"{len(returned - stored)} jobs a call returned are not stored"

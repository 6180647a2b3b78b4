"""The examples of docs/integrations/ run as written: their files, with Redis, the worker
they show and a served jobpulse; the jobs they make end as the page says.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from jobpulse.client import JobPulse
from tests.docs.fences import DOCS, blocks
from tests.integrations.executors import ROOT, JobpulseProcess, WorkerProcess, ended

#: The examples' own Redis database (the executors' tests use 11, 12 and 13).
REDIS_URL = "redis://127.0.0.1:6379/14"

TITLE = re.compile(r'\btitle="(?P<name>[^"]+)"')
#: Per page: the worker's command (a module and its arguments) and the publisher's script.
PAGES = {
    "rq": (("worker",), "enqueue.py"),
    "dramatiq": (("dramatiq", "app", "--processes", "1", "--threads", "1"), "send.py"),
    "arq": (("arq", "app.WorkerSettings"), "enqueue.py"),
}


def write_files(page: Path, into: Path) -> list[str]:
    """Write the page's titled Python blocks into `into`; their names."""
    names = []
    for block in blocks(page):
        if block.is_python and (title := TITLE.search(block.options)):
            (into / title["name"]).write_text(block.code)
            names.append(title["name"])
    return names


@pytest.fixture
def redis() -> Iterator[Redis]:
    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_example_of_the_page_runs_as_written(
    name: str, server: JobpulseProcess, api: JobPulse, redis: Redis, tmp_path: Path
) -> None:
    page = DOCS / "integrations" / f"{name}.md"
    files = write_files(page, tmp_path)
    worker_command, publisher = PAGES[name]
    assert publisher in files
    env = {"REDIS_URL": REDIS_URL}
    module, *args = worker_command
    worker = WorkerProcess(module, server, tmp_path / "worker.log", *args, env=env, cwd=tmp_path)
    try:
        sent = subprocess.run(
            [sys.executable, publisher],
            cwd=tmp_path,
            env=os.environ
            | env
            | {
                "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
                "JOBPULSE_URL": server.url,
                "JOBPULSE_API_KEY": server.admin_key,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        added, failed = sent.stdout.split()

        done = ended(api, f"{name}_task_id", added)
        assert done.status == "completed", worker.output()
        assert done.job_type.endswith("add")
        lost = ended(api, f"{name}_task_id", failed)
        assert lost.status == "failed"
        assert lost.metadata["error_type"] == "ValueError"
        assert lost.metadata["error_message"] == "no luck"
    finally:
        worker.stop()

"""The README's tour, run as a newcomer would paste it, against a real `jobpulse serve`: its
shell commands in turn, then its Python example with the key exported.

The server listens on a free port rather than 8000 and on a fresh file; `.venv/bin/` is the
environment running the tests. Lines holding a placeholder to fill in (`key-…`, `job-…`) are
left out, and the demo runs twenty times as fast.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.docs.fences import README, blocks
from tests.e2e.conftest import close, start, stop

BIN = f"{Path(sys.executable).parent}/"


def _tour() -> str:
    """The shell blocks of the README's tour as one script, placeholders left out."""
    text = README.read_text()
    first = text.index("## A five-minute tour")
    last = text.index("\n## ", first + 1)
    lines = [
        line
        for block in blocks(README)
        if block.language == "sh" and first < _offset(text, block.line) < last
        for line in block.code.splitlines()
        if "…" not in line.split("#")[0]
    ]
    return "set -euo pipefail\n" + "\n".join(lines) + "\n"


def _offset(text: str, line: int) -> int:
    return sum(len(row) + 1 for row in text.splitlines()[: line - 1])


def _answers(out: str) -> list[Any]:
    """The JSON answers the curl commands printed, one after the other, before the tables."""
    decoder, at = json.JSONDecoder(), 0
    answers: list[Any] = []
    while True:
        at = len(out) - len(out[at:].lstrip())
        if not out[at:].startswith(("{", "[")):
            return answers
        answer, at = decoder.raw_decode(out, at)
        answers.append(answer)


def _run_the_sdk_example(url: str, key: str, cwd: Path) -> None:
    """The tour's Python example, with the key exported, ends with its job completed."""
    [example] = [block for block in blocks(README) if block.is_python and block.not_run_because]
    script = cwd / "tracked.py"
    script.write_text(example.code.replace("http://127.0.0.1:8000", url))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ | {"JOBPULSE_API_KEY": key},
    )
    assert done.returncode == 0, done.stderr
    listed = httpx.get(
        f"{url}/v1/jobs",
        params={"metadata.source_id": "agent-7"},
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    assert [(job["status"], job["ttft_ns"] is not None) for job in listed] == [("completed", True)]


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    server = start(url)
    try:
        script = (
            _tour()
            .replace("http://127.0.0.1:8000", server.url)
            .replace(".venv/bin/", BIN)
            .replace("demo --jobs 60", "demo --jobs 60 --speed 20")
        )
        done = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            cwd=tmp_path,
            env=os.environ
            | {"JOBPULSE_DATABASE_URL": url, "JOBPULSE_URL": server.url, "COLUMNS": "200"},
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        created, ended, refused, page, count = _answers(done.stdout)
        assert created["status"] == "running"
        assert (ended["status"], ended["stop_reason"]) == ("completed", "end_turn")
        assert ended["total_duration_ns"] > 0
        assert refused["error"]["code"] == "invalid_transition"
        assert refused["error"]["current_status"] == "completed"
        assert [job["id"] for job in page] == [created["id"]]
        assert count["total"] == 1
        assert re.search(r"completed: \d+", done.stdout)  # the demo's summary
        assert "REJECTED" in done.stdout  # the job's history shows the refused move
        _run_the_sdk_example(server.url, server.admin_key, tmp_path)
        assert stop(server) == 0
    finally:
        close(server)

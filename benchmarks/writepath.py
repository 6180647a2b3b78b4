"""The write path against an earlier revision, side by side: JobManager transitions and
creates per second at 16 concurrent callers (the transitions benchmark's loops), this
checkout and a worktree of `REV` taking turns, on fresh databases of each kind, medians of
rounds. Each also gives the CPU time its process spent an operation, which other work on a
shared machine disturbs less than the rate (on PostgreSQL it leaves out the server's).

    python -m benchmarks.writepath REV [ROUNDS]

Both sides run with this checkout's virtualenv; each migrates its own database.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parents[1]
JOBS = {"sqlite": 2000, "postgresql": 1000}
#: The last revision before the stats rollups (issue 12), whose write path they must keep.
BEFORE_ROLLUPS = "0f8f86c"
#: The last revision before the storage redesign (issue 21), whose write path it must keep.
BEFORE_REDESIGN = "80c5405"


class RevisionMissingError(Exception):
    """The revision to compare with is not in this clone's history (a shallow clone)."""


_ONE = """
import asyncio, sys, time
from benchmarks.common import fresh_database, seed
from benchmarks.transitions import STEPS, _manager, _manager_creates
async def main(kind, jobs):
    async with fresh_database(kind) as url:
        ids = await seed(url, jobs, users=1, status="created")
        began = time.process_time()
        moved = await _manager(url, ids, 16, "FULL")
        moving = (time.process_time() - began) / (jobs * len(STEPS))
    async with fresh_database(kind) as url:
        began = time.process_time()
        created = await _manager_creates(url, jobs, 16)
        creating = (time.process_time() - began) / jobs
    print(moved, created, moving, creating)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
#: What one run measures, in the order it prints them (then each one's CPU s an operation).
LOOPS = ("transitions", "creates")


class Figures(NamedTuple):
    """Medians of one loop on one database: operations a second, CPU seconds an operation."""

    rate: float
    cpu: float
    base_rate: float
    base_cpu: float


def _rates(root: Path, kind: str) -> list[float]:
    env = os.environ | {"PYTHONPATH": f"{root / 'src'}:{root}"}
    done = subprocess.run(
        [sys.executable, "-c", _ONE, kind, str(JOBS[kind])],
        capture_output=True, text=True, env=env, cwd=root, check=True, timeout=600,
    )  # fmt: skip
    return [float(rate) for rate in done.stdout.strip().splitlines()[-1].split()]


@contextlib.contextmanager
def revision_tree(revision: str) -> Iterator[Path]:
    """A temporary worktree of `revision` (RevisionMissingError in a shallow clone)."""
    with tempfile.TemporaryDirectory(prefix="jobpulse-rev-") as folder:
        other = Path(folder) / "tree"
        added = subprocess.run(
            ["git", "-C", str(HERE), "worktree", "add", "--detach", str(other), revision],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        if added.returncode != 0:
            raise RevisionMissingError(added.stderr.strip())
        try:
            yield other
        finally:
            subprocess.run(
                ["git", "-C", str(HERE), "worktree", "remove", "--force", str(other)],
                check=False, capture_output=True,
            )  # fmt: skip


def compare(revision: str, rounds: int = 3) -> dict[tuple[str, str], Figures]:
    """Medians of this checkout and of `revision` for each database and loop; the two take
    turns going first, so neither always runs on a machine the other has just warmed.
    """
    with revision_tree(revision) as other:
        figures = {}
        for kind in JOBS:
            ours, theirs = [], []
            for turn in range(rounds):
                if turn % 2:
                    theirs.append(_rates(other, kind))
                ours.append(_rates(HERE, kind))
                if not turn % 2:
                    theirs.append(_rates(other, kind))
            for at, loop in enumerate(LOOPS):
                cpu = at + len(LOOPS)
                figures[kind, loop] = Figures(
                    statistics.median(rates[at] for rates in ours),
                    statistics.median(rates[cpu] for rates in ours),
                    statistics.median(rates[at] for rates in theirs),
                    statistics.median(rates[cpu] for rates in theirs),
                )
        return figures


def main() -> None:
    revision = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for (kind, loop), got in compare(revision, rounds).items():
        print(
            f"{kind:10}  {loop:11} /s at 16 callers: this {got.rate:7.0f}  {revision}"
            f" {got.base_rate:7.0f}  ratio {got.rate / got.base_rate:5.2f}  CPU us/op this"
            f" {got.cpu * 1e6:5.0f}  {revision} {got.base_cpu * 1e6:5.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

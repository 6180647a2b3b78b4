"""The write path against an earlier revision, side by side: JobManager transitions and
creates per second at 16 concurrent callers (the transitions benchmark's loops), this
checkout and a worktree of `REV` taking turns, on fresh databases of each kind, medians of
rounds.

    python -m benchmarks.writepath REV [ROUNDS]

Both sides run with this checkout's virtualenv; each migrates its own database.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
JOBS = {"sqlite": 2000, "postgresql": 1000}
#: The last revision before the stats rollups (issue 12), whose write path they must keep.
BEFORE_ROLLUPS = "0f8f86c"
#: The last revision before the storage redesign (issue 21), whose write path it must keep.
BEFORE_REDESIGN = "80c5405"


class RevisionMissingError(Exception):
    """The revision to compare with is not in this clone's history (a shallow clone)."""


_ONE = """
import asyncio, sys
from benchmarks.common import fresh_database, seed
from benchmarks.transitions import _manager, _manager_creates
async def main(kind, jobs):
    async with fresh_database(kind) as url:
        ids = await seed(url, jobs, users=1, status="created")
        moved = await _manager(url, ids, 16, "FULL")
    async with fresh_database(kind) as url:
        print(moved, await _manager_creates(url, jobs, 16))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
#: What one run measures, in the order it prints them.
LOOPS = ("transitions", "creates")


def _rates(root: Path, kind: str) -> list[float]:
    env = os.environ | {"PYTHONPATH": f"{root / 'src'}:{root}"}
    done = subprocess.run(
        [sys.executable, "-c", _ONE, kind, str(JOBS[kind])],
        capture_output=True, text=True, env=env, cwd=root, check=True, timeout=600,
    )  # fmt: skip
    return [float(rate) for rate in done.stdout.strip().splitlines()[-1].split()]


def compare(revision: str, rounds: int = 3) -> dict[tuple[str, str], tuple[float, float]]:
    """Median rates of (this checkout, `revision`) for each database and loop; the two take
    turns going first, so neither always runs on a machine the other has just warmed.
    """
    with tempfile.TemporaryDirectory(prefix="jobpulse-rev-") as folder:
        other = Path(folder) / "tree"
        added = subprocess.run(
            ["git", "-C", str(HERE), "worktree", "add", "--detach", str(other), revision],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        if added.returncode != 0:
            raise RevisionMissingError(added.stderr.strip())
        try:
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
                    figures[kind, loop] = (
                        statistics.median(rates[at] for rates in ours),
                        statistics.median(rates[at] for rates in theirs),
                    )
            return figures
        finally:
            subprocess.run(
                ["git", "-C", str(HERE), "worktree", "remove", "--force", str(other)],
                check=False, capture_output=True,
            )  # fmt: skip


def main() -> None:
    revision = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for (kind, loop), (ours, theirs) in compare(revision, rounds).items():
        print(
            f"{kind:10}  {loop:11} /s at 16 callers: this {ours:7.0f}  {revision} {theirs:7.0f}"
            f"  ratio {ours / theirs:5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

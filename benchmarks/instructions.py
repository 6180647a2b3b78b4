"""The write path in machine instructions, against an earlier revision: what a SQLite
transition and a create cost this checkout and `REV`, counted by valgrind's callgrind.

Instructions do not depend on what else the machine is doing (a rate on a shared two-core
machine does), so this is the figure to trust when the rates are noisy. Each side runs its
loop (16 callers, as the writepath section) twice under callgrind: once seeding only, once
seeding and working; the difference over the operations is what one operation costs, the
event loop, the writer thread, SQLAlchemy and SQLite's C code included (system calls and
fsync waits are not instructions).

    python -m benchmarks.instructions REV [OPERATIONS]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from benchmarks.writepath import HERE, revision_tree

#: Jobs each run moves through three transitions, and creates.
OPERATIONS = 300
_ONE = """
import asyncio, sys
from benchmarks.common import fresh_database, seed
from benchmarks.transitions import ACTOR, _manager, _manager_creates
from jobpulse import JobManager, Settings
async def main(loop, jobs):
    async with fresh_database("sqlite") as url:
        ids = await seed(url, jobs, users=1, status="created")
        if loop == "transitions":
            await _manager(url, ids, 16, "FULL")
        elif loop == "creates":
            await _manager_creates(url, jobs, 16)
        else:
            manager = JobManager.from_settings(Settings(database_url=url))
            await manager.get_job(ACTOR, ids[0])
            await manager.close()
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
#: Each loop and how many operations it runs a job.
LOOPS = {"transitions": 3, "creates": 1}


class Counts(NamedTuple):
    """Instructions an operation: this checkout and the revision."""

    this: float
    before: float


def available() -> bool:
    """Whether valgrind is installed."""
    return shutil.which("valgrind") is not None


def _instructions(root: Path, loop: str, jobs: int) -> int:
    return callgrind(root, _ONE, [loop, str(jobs)])


def callgrind(root: Path, script: str, args: list[str], env: dict[str, str] | None = None) -> int:
    """The instructions `python -c script *args` runs under callgrind, from checkout `root`
    (its sources first on the path), with `env` added to this process's environment.
    """
    env = os.environ | (env or {}) | {"PYTHONPATH": f"{root / 'src'}:{root}"}
    with tempfile.TemporaryDirectory(prefix="jobpulse-cg-") as folder:
        out = Path(folder) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, "-c", script, *args],
            capture_output=True, text=True, env=env, cwd=root, check=True, timeout=1800,
        )  # fmt: skip
        found = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"callgrind wrote no summary to {out}")
        return int(found.group(1))


def _per_operation(root: Path, loop: str, jobs: int) -> float:
    worked = _instructions(root, loop, jobs)
    seeded = _instructions(root, "seed", jobs)
    return (worked - seeded) / (jobs * LOOPS[loop])


def compare(revision: str, jobs: int = OPERATIONS) -> dict[str, Counts]:
    """Instructions a SQLite transition and a create, this checkout and `revision`."""
    with revision_tree(revision) as other:
        return {
            loop: Counts(_per_operation(HERE, loop, jobs), _per_operation(other, loop, jobs))
            for loop in LOOPS
        }


def main() -> None:
    revision = sys.argv[1]
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else OPERATIONS
    for loop, counts in compare(revision, jobs).items():
        print(
            f"sqlite  {loop:11} instructions/op: this {counts.this:9.0f}  {revision}"
            f" {counts.before:9.0f}  before/this {counts.before / counts.this:5.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""`make bench`'s sections against an earlier revision of jobpulse: the write path before
the stats rollups and before the storage redesign, in rates and in instructions.
"""

from __future__ import annotations

import asyncio
import os

from benchmarks import instructions, writepath
from benchmarks.reporting import report, verdict


async def bench_writepath() -> None:
    await _write_path_against(writepath.BEFORE_ROLLUPS, "with the rollups / before them", 0.9)


async def bench_redesign() -> None:
    revision = os.environ.get("BENCH_BASELINE_REV", writepath.BEFORE_REDESIGN)
    await _write_path_against(revision, "after the storage redesign / before it", 0.95)
    report(
        f"== the same in instructions (callgrind; immune to the machine's other work): "
        f"SQLite, {instructions.OPERATIONS} jobs, this checkout and {revision}"
    )
    if not instructions.available():
        report("skipped: valgrind is not installed")
        return
    try:
        counts = await asyncio.to_thread(instructions.compare, revision)
    except writepath.RevisionMissingError:
        report(f"skipped: {revision} is not in this clone's history")
        return
    for loop, got in counts.items():
        ratio = got.before / got.this
        report(
            f"sqlite      {loop:11} instructions/op this {got.this:8.0f}  before "
            f"{got.before:8.0f}  before/this {ratio:5.3f}  {verdict(ratio, 0.95)}"
        )


async def _write_path_against(revision: str, label: str, target: float) -> None:
    rounds = int(os.environ.get("BENCH_WRITEPATH_ROUNDS", "7"))
    report(
        f"== write path {label} ({revision}): JobManager at 16 callers, this checkout and "
        f"{revision} alternating, medians of {rounds} rounds"
    )
    try:
        figures = await asyncio.to_thread(writepath.compare, revision, rounds)
    except writepath.RevisionMissingError:
        report(f"skipped: {revision} is not in this clone's history")
        return
    for (kind, loop), got in figures.items():
        ratio = got.rate / got.base_rate
        report(
            f"{kind:10}  {loop:11}/s this {got.rate:7.0f}  before {got.base_rate:7.0f}"
            f"  ratio {ratio:5.2f}  {verdict(ratio, target)}"
        )
        report(
            f"{kind:10}  {loop:11} CPU us/op (this process) this {got.cpu * 1e6:5.0f}"
            f"  before {got.base_cpu * 1e6:5.0f}  before/this {got.base_cpu / got.cpu:5.2f}"
        )

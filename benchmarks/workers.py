"""HTTP PATCH transitions/s on PostgreSQL: `jobpulse serve --workers 2` against `jobpulse
serve` (one worker), each on a database of its own, loaded in turn by the same wrk as the
`http` section (see benchmarks/http.py) in alternating rounds. Neither server is pinned to a
core: the second worker is there to take the second one. Each round also reads how much of
the machine stayed idle while it ran: the room a second worker had to take.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import NamedTuple

from benchmarks import http

#: The servers compared, by name, and their workers.
SERVERS = {"one": 1, "two": 2}


class Measured(NamedTuple):
    #: Each server's runs, one a round.
    runs: dict[str, list[http.Run]]
    #: The share of the machine's CPU time left idle during each of those runs.
    idle: dict[str, list[float]]


async def measure(rounds: int) -> Measured:
    """Each server's runs, one a round, the order of the two swapped every round."""
    async with contextlib.AsyncExitStack() as stack:
        loads = {
            name: await stack.enter_async_context(
                http.jobpulse("postgresql", rounds=rounds, workers=workers, cpu=None)
            )
            for name, workers in SERVERS.items()
        }
        found = Measured({name: [] for name in loads}, {name: [] for name in loads})
        for turn in range(rounds):
            order = list(loads) if turn % 2 == 0 else list(reversed(loads))
            for name in order:
                run, idle = await _run(loads[name], turn)
                found.runs[name].append(run)
                found.idle[name].append(idle)
    return found


async def _run(load: http.Load, turn: int) -> tuple[http.Run, float]:
    before, (idle_before, total_before) = http.cpu_seconds(load.pid), _machine_times()
    env = load.env | {"ROUND": str(turn)}
    rate = await asyncio.to_thread(http.wrk, load.url, load.script, env)
    used = http.cpu_seconds(load.pid) - before
    idle, total = _machine_times()
    run = http.Run(rate, used / (rate * http.DURATION_S))
    return run, (idle - idle_before) / (total - total_before)


def _machine_times() -> tuple[int, int]:
    """The machine's idle and total CPU time so far, in clock ticks, every core counted
    (the first line of /proc/stat: user, nice, system, idle, iowait, irq, softirq, steal).
    """
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return ticks[3] + ticks[4], sum(ticks)

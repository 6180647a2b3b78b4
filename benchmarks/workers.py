"""HTTP PATCH transitions/s on PostgreSQL: `jobpulse serve --workers 2` against `jobpulse
serve` (one worker), each on a database of its own, loaded in turn by the same wrk as the
`http` section (see benchmarks/http.py) in alternating rounds. Neither server is pinned to a
core: the second worker is there to take the second one.
"""

from __future__ import annotations

import asyncio
import contextlib

from benchmarks import http

#: The servers compared, by name, and their workers.
SERVERS = {"one": 1, "two": 2}


async def measure(rounds: int) -> dict[str, list[http.Run]]:
    """Each server's runs, one a round, the order of the two swapped every round."""
    async with contextlib.AsyncExitStack() as stack:
        loads = {
            name: await stack.enter_async_context(
                http.jobpulse("postgresql", rounds=rounds, workers=workers, cpu=None)
            )
            for name, workers in SERVERS.items()
        }
        runs: dict[str, list[http.Run]] = {name: [] for name in loads}
        for turn in range(rounds):
            order = list(loads) if turn % 2 == 0 else list(reversed(loads))
            for name in order:
                runs[name].append(await _run(loads[name], turn))
    return runs


async def _run(load: http.Load, turn: int) -> http.Run:
    before = http.cpu_seconds(load.pid)
    env = load.env | {"ROUND": str(turn)}
    rate = await asyncio.to_thread(http.wrk, load.url, load.script, env)
    used = http.cpu_seconds(load.pid) - before
    return http.Run(rate, used / (rate * http.DURATION_S))

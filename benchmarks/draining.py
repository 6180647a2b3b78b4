"""Watching one benchmark worker drain its queue: the first and last tasks stamp the time in
Redis (`<queue>:start`, `<queue>:end`), and the CPU time the worker process (its threads and
the children it reaped) spent in between is read from /proc as they are seen. Tasks per CPU
second is the integration's own cost, whatever else the machine runs; tasks per second is
what the worker got done on this machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

#: How often the stamps are looked for (s): the CPU time read may be off by about this much.
POLL_S = 0.005


@dataclass
class Drained:
    """One worker's drain of `tasks` tasks."""

    tasks: int
    #: Seconds from the first task's stamp to the last's.
    seconds: float
    #: CPU seconds of the worker process meanwhile (NaN where /proc is not there).
    cpu_seconds: float
    #: The delays of its reports, when it was instrumented.
    delays: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def cpu_per_task(self) -> float:
        return self.cpu_seconds / self.tasks


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process `pid`, its threads and reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    # utime, stime, cutime, cstime: fields 14 to 17 of proc(5), counted after the name.
    return sum(int(value) for value in fields[11:15]) / ticks


def watch(worker: subprocess.Popen[bytes], redis_url: str, queue: str, tasks: int) -> Drained:
    """Wait for `worker` to drain `queue` (`tasks` tasks between the two stamps). The stamps
    stay (a worker may wait for the last one to stop): `forget` them once it has.
    """
    deadline = time.monotonic() + 900
    began = None
    with Redis.from_url(redis_url) as redis:
        while (end := redis.get(f"{queue}:end")) is None:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the benchmark worker of {queue} stopped before its end")
            if began is None and redis.get(f"{queue}:start") is not None:
                began = cpu_seconds(worker.pid)
            time.sleep(POLL_S)
        ended = cpu_seconds(worker.pid)
        start = redis.get(f"{queue}:start")
        assert start is not None, f"{queue}: the run never started"
    spent = float("nan") if began is None else ended - began
    return Drained(tasks, float(end) - float(start), spent)


def forget(redis_url: str, queue: str) -> None:
    """Remove the stamps of `queue`, and the queue."""
    with Redis.from_url(redis_url) as redis:
        redis.delete(f"{queue}:start", f"{queue}:end", queue)


def read_delays(path: Path) -> list[float]:
    """The delays (s) an instrumented worker wrote, one a line."""
    return [float(line) for line in path.read_text().split()]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(rounds: list[tuple[Drained, Drained]]) -> dict[str, float]:
    """Over alternating rounds of (without, with the integration): the medians of tasks/s
    and of CPU per task of each, of their ratios (with ÷ without for tasks/s, without ÷ with
    for CPU per task, so that 1 is no cost either way), and the reports' p50/p99 delay.
    """
    plain, instrumented = [p for p, _ in rounds], [i for _, i in rounds]
    delays = [delay for _, drained in rounds for delay in drained.delays]
    nan = float("nan")
    return {
        "plain": statistics.median(d.rate for d in plain),
        "instrumented": statistics.median(d.rate for d in instrumented),
        "ratio": statistics.median(i.rate / p.rate for p, i in rounds),
        "plain_cpu": statistics.median(d.cpu_per_task for d in plain),
        "instrumented_cpu": statistics.median(d.cpu_per_task for d in instrumented),
        "cpu_ratio": statistics.median(p.cpu_per_task / i.cpu_per_task for p, i in rounds),
        "reports": len(delays),
        "p50": quantile(delays, 0.5) if delays else nan,
        "p99": quantile(delays, 0.99) if delays else nan,
    }

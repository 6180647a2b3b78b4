"""`make bench`: every figure next to its baseline from the same run, and their ratio.

Sizes can be lowered for a quick look: BENCH_SQLITE_JOBS, BENCH_POSTGRES_JOBS (transitions),
BENCH_LIST_SIZES (comma-separated job counts for the listing; default 10000,1000000),
BENCH_HTTP_SECONDS (each wrk run; default 10), BENCH_HTTP_ROUNDS (rounds of the tracing
comparison; default 3). The HTTP figures need wrk (Debian: wrk).
"""

from __future__ import annotations

import asyncio
import os
import statistics

import uvloop

from benchmarks import http, listing, transitions, webhooks

KINDS = ("sqlite", "postgresql")
TRANSITION_JOBS = {
    "sqlite": int(os.environ.get("BENCH_SQLITE_JOBS", "4000")),
    "postgresql": int(os.environ.get("BENCH_POSTGRES_JOBS", "1000")),
}
TRANSITION_TARGETS = {"sqlite": 0.3, "postgresql": 0.7}
HTTP_ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
LIST_SIZES = [int(n) for n in os.environ.get("BENCH_LIST_SIZES", "10000,1000000").split(",")]


def verdict(ratio: float, target: float, *, at_most: bool = False) -> str:
    met = ratio <= target if at_most else ratio >= target
    return f"target {'<=' if at_most else '>='} {target}: {'met' if met else 'MISSED'}"


def report(line: str) -> None:
    print(line, flush=True)


async def bench_transitions() -> None:
    report("== transitions/s: JobManager.update_job vs the raw driver, same statements")
    for kind in KINDS:
        rates = await transitions.measure(kind, TRANSITION_JOBS[kind])
        report(f"{kind:10}  raw driver, 1 connection      {rates['raw']:8.0f}/s")
        for concurrency in (1, 16):
            rate = rates[f"c{concurrency}"]
            ratio = rate / rates["raw"]
            note = verdict(ratio, TRANSITION_TARGETS[kind]) if concurrency == 16 else ""
            report(
                f"{kind:10}  JobManager, concurrency {concurrency:2}   {rate:8.0f}/s"
                f"  ratio {ratio:5.2f}  {note}"
            )


async def bench_listing() -> None:
    report("== listing: p99 of a page of 50 filtered by user and status")
    for kind in KINDS:
        by_size = {size: await listing.measure(kind, size) for size in LIST_SIZES}
        smallest, largest = min(by_size), max(by_size)
        for size, p99s in by_size.items():
            ratio = p99s["ours"] / p99s["raw"]
            note = verdict(ratio, 3.0, at_most=True) if size == largest else ""
            report(
                f"{kind:10}  {size:>9} jobs  JobManager p99 {p99s['ours'] * 1e3:6.2f} ms"
                f"  raw p99 {p99s['raw'] * 1e3:6.2f} ms  ratio {ratio:5.2f}  {note}"
            )
        if smallest != largest:
            growth = by_size[largest]["ours"] / by_size[smallest]["ours"]
            report(
                f"{kind:10}  p99 at {largest} / p99 at {smallest}: {growth:5.2f}"
                f"  {verdict(growth, 1.5, at_most=True)}"
            )


async def bench_cpu_bound_sqlite() -> None:
    report(
        "== the same on SQLite with synchronous=NORMAL on both sides: fsync out of the way, "
        "so the ratio shows the Python cost (informational; jobpulse defaults to FULL)"
    )
    rates = await transitions.measure("sqlite", TRANSITION_JOBS["sqlite"], synchronous="NORMAL")
    report(f"sqlite      raw driver, 1 connection      {rates['raw']:8.0f}/s")
    for concurrency in (1, 16):
        rate = rates[f"c{concurrency}"]
        report(
            f"sqlite      JobManager, concurrency {concurrency:2}   {rate:8.0f}/s"
            f"  ratio {rate / rates['raw']:5.2f}"
        )


async def bench_http() -> None:
    report(
        f"== HTTP transitions/s (wrk, {http.CONNECTIONS} connections, {http.DURATION_S}s): "
        "PATCH on `jobpulse serve` vs a hello-world FastAPI POST"
    )
    hello = await asyncio.to_thread(http.hello_world)
    report(f"hello-world FastAPI POST        {hello:8.0f}/s")
    for kind in KINDS:
        [run] = (await http.transitions(kind, {"plain": http.PLAIN}))["plain"]
        ratio = run.rate / hello
        note = verdict(ratio, 0.4) if kind == "sqlite" else ""
        report(f"{kind:10}  PATCH transitions  {run.rate:8.0f}/s  ratio {ratio:5.2f}  {note}")


async def bench_tracing() -> None:
    report(
        "== telemetry cost: PATCH transitions on SQLite, three servers side by side on one core "
        "(each its own database and wrk): tracing off; on, every span kept in memory; on, one "
        f"trace in ten sampled. Metrics are on in all. {HTTP_ROUNDS} rounds"
    )
    servers = {"off": http.PLAIN, "on": http.TRACED, "sampled": http.SAMPLED}
    runs = await http.transitions("sqlite", servers, rounds=HTTP_ROUNDS)
    for turn in range(HTTP_ROUNDS):
        off, on, sampled = (runs[name][turn] for name in servers)
        report(
            f"sqlite      off {off.rate:6.0f}/s {off.cpu_per_request * 1e6:5.0f} us CPU/request"
            f"  on {on.rate:6.0f}/s {on.cpu_per_request * 1e6:5.0f} us"
            f"  sampled {sampled.rate:6.0f}/s {sampled.cpu_per_request * 1e6:5.0f} us"
        )
    for name, target in (("on", 1.15), ("sampled", None)):
        by_rate = statistics.median(
            off.rate / other.rate for off, other in zip(runs["off"], runs[name], strict=True)
        )
        by_cpu = statistics.median(
            other.cpu_per_request / off.cpu_per_request
            for off, other in zip(runs["off"], runs[name], strict=True)
        )
        note = verdict(by_rate, target, at_most=True) if target else "(informational)"
        report(
            f"sqlite      {name:7} median off/on {by_rate:5.2f}"
            f"  CPU per request on/off {by_cpu:5.2f}  {note}"
        )


async def bench_webhooks() -> None:
    report(
        f"== webhooks: callbacks/s from a backlog of {webhooks.BACKLOG} vs a raw httpx POST loop "
        f"({webhooks.CONCURRENCY} at a time, same receiver); PATCH-to-receiver latency"
    )
    for kind in KINDS:
        rates = await webhooks.throughput(kind)
        ratio = rates["ours"] / rates["raw"]
        report(
            f"{kind:10}  delivered {rates['ours']:7.0f}/s  raw httpx {rates['raw']:7.0f}/s"
            f"  ratio {ratio:5.2f}  {verdict(ratio, 0.7)}"
        )
        delays = await webhooks.latency(kind)
        p50, p99 = delays["p50"] * 1e3, delays["p99"] * 1e3
        met = "met" if p50 <= 50 and p99 <= 250 else "MISSED"
        report(
            f"{kind:10}  latency p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
            f"  (targets <= 50 / <= 250 ms: {met})"
        )


async def main() -> None:
    await bench_transitions()
    await bench_cpu_bound_sqlite()
    await bench_http()
    await bench_tracing()
    await bench_webhooks()
    await bench_listing()


if __name__ == "__main__":
    uvloop.run(main())

"""`make bench`: every figure next to its baseline from the same run, and their ratio.

Sizes can be lowered for a quick look: BENCH_SQLITE_JOBS, BENCH_POSTGRES_JOBS (transitions),
BENCH_LIST_SIZES (comma-separated job counts for the listing; default 10000,1000000),
BENCH_HTTP_SECONDS (each wrk run; default 10), BENCH_HTTP_ROUNDS (rounds of the tracing
comparison; default 3), BENCH_TRANSITION_ROUNDS (alternating rounds of PostgreSQL's
transitions and creates; default 3), BENCH_ONLY (comma-separated sections: transitions,
creates, sqlite_cpu, http, tracing, webhooks, listing, imports, retention, batches, stats,
fanout, writepath, redesign, fairness, usage, alerts, bulk, llmsdk, integrations, executors,
workers),
BENCH_WRITEPATH_ROUNDS (rounds of the write path against the revision before the rollups, and
before the storage redesign; default 7), BENCH_BASELINE_REV (the revision the `redesign`
section compares with; default the one before the redesign), BENCH_STATS_SIZES (job counts of
the stats section; default 10000,1000000), BENCH_FANOUT_SECONDS (each full-speed phase of the
fan-out; default 5), BENCH_WEBHOOK_ROUNDS (alternating rounds of the webhooks section's
drains; default 3), BENCH_FAIRNESS_JOBS (jobs seeded for the fairness section; default
200000), BENCH_FAIRNESS_SECONDS and BENCH_FAIRNESS_ROUNDS (its alternating phases; default 4
and 4), BENCH_USAGE_SIZES (job counts, each job with one LLM call, of the usage section's
stats; default 1000000), BENCH_USAGE_JOBS and BENCH_USAGE_ROUNDS (jobs a round and rounds of
its records against transitions; default 400 and 3), BENCH_ALERT_SIZES (job counts of the
alerts section; default 1000000), BENCH_BULK_JOBS (jobs the bulk section cancels; default
10000), BENCH_CELERY_TASKS and BENCH_CELERY_ROUNDS (the Celery integration's no-op tasks a
round, and rounds; default 10000 and 5), BENCH_EXECUTOR_TASKS and BENCH_EXECUTOR_ROUNDS (the
same for RQ, Dramatiq and arq; by executor by default, see executors.py, and 3). The HTTP
figures need wrk (Debian: wrk).
"""

from __future__ import annotations

import contextlib
import os
import statistics

import uvloop

from benchmarks import (
    batches,
    fairness,
    fanout,
    http,
    imports,
    listing,
    retention,
    stats,
    transitions,
    webhooks,
    workers,
)
from benchmarks.features import (
    bench_alerts,
    bench_bulk,
    bench_executors,
    bench_integrations,
    bench_llmsdk,
    bench_usage,
)
from benchmarks.reporting import KINDS, report, verdict
from benchmarks.revisions import bench_redesign, bench_writepath

TRANSITION_JOBS = {
    "sqlite": int(os.environ.get("BENCH_SQLITE_JOBS", "4000")),
    "postgresql": int(os.environ.get("BENCH_POSTGRES_JOBS", "1000")),
}
#: Per database and concurrency: JobManager ÷ its fair baseline (16 callers: the raw pool of
#: 16 on PostgreSQL, the single writer on SQLite; 1 caller: one raw connection).
TRANSITION_TARGETS: dict[str, dict[int, float | None]] = {
    "sqlite": {1: None, 16: 1.0},
    "postgresql": {1: 0.7, 16: 2.0},
}
#: Alternating rounds of PostgreSQL's transitions and creates (BENCH_TRANSITION_ROUNDS).
TRANSITION_ROUNDS = int(os.environ.get("BENCH_TRANSITION_ROUNDS", "3"))
HTTP_ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
LIST_SIZES = [int(n) for n in os.environ.get("BENCH_LIST_SIZES", "10000,1000000").split(",")]


def _ratio(rates: dict[str, list[float]], name: str, against: str) -> float:
    """The median of each round's `name` ÷ `against` (rounds alternate, so neighbours share
    the machine's moment).
    """
    pairs = zip(rates[name], rates[against], strict=True)
    return statistics.median(rate / baseline for rate, baseline in pairs)


def _rate(rates: dict[str, list[float]], name: str) -> float:
    return statistics.median(rates[name])


async def bench_transitions() -> None:
    report(
        "== transitions/s: JobManager.update_job vs the raw driver, same statements, a "
        "transaction per transition; on PostgreSQL the fair baseline for 16 callers is a raw "
        f"pool of 16 with 16 callers ({TRANSITION_ROUNDS} alternating rounds, medians; the "
        "one-connection loop and the pool writing a transition in one statement are second "
        "references)"
    )
    for kind in KINDS:
        rounds = TRANSITION_ROUNDS if kind == "postgresql" else 1
        rates = await transitions.measure(kind, TRANSITION_JOBS[kind], rounds=rounds)
        report(f"{kind:10}  raw driver, 1 connection      {_rate(rates, 'raw'):8.0f}/s")
        baseline = "raw"
        if "raw16" in rates:
            baseline = "raw16"
            report(f"{kind:10}  raw driver, pool of 16, c=16  {_rate(rates, 'raw16'):8.0f}/s")
        for concurrency in (1, 16):
            name = f"c{concurrency}"
            ratio = _ratio(rates, name, baseline if concurrency == 16 else "raw")
            target = TRANSITION_TARGETS[kind][concurrency]
            note = verdict(ratio, target) if target else ""
            report(
                f"{kind:10}  JobManager, concurrency {concurrency:2}   {_rate(rates, name):8.0f}/s"
                f"  ratio {ratio:5.2f}  {note}"
            )
        if "merged16" in rates:
            report(
                f"{kind:10}  raw pool of 16, one statement a transition's writes "
                f"{_rate(rates, 'merged16'):8.0f}/s; JobManager c=16 against it "
                f"{_ratio(rates, 'c16', 'merged16'):5.2f}"
            )


async def bench_creates() -> None:
    report(
        "== creates/s: JobManager.create_job with 16 callers vs the raw driver (SQLite: the "
        "single writer; PostgreSQL: a pool of 16 with 16 callers, in "
        f"{TRANSITION_ROUNDS} alternating rounds, and the same pool writing a create in one "
        "statement as a second reference), a transaction per create"
    )
    for kind in KINDS:
        rounds = TRANSITION_ROUNDS if kind == "postgresql" else 1
        rates = await transitions.measure_creates(kind, TRANSITION_JOBS[kind] * 2, rounds)
        ratio = _ratio(rates, "c16", "raw")
        target = TRANSITION_TARGETS[kind][16]
        report(
            f"{kind:10}  raw {_rate(rates, 'raw'):8.0f}/s  JobManager c=16 "
            f"{_rate(rates, 'c16'):8.0f}/s  ratio {ratio:5.2f}  "
            f"{verdict(ratio, target) if target else ''}"
        )
        if "merged" in rates:
            report(
                f"{kind:10}  raw, one statement a create {_rate(rates, 'merged'):8.0f}/s; "
                f"JobManager c=16 against it {_ratio(rates, 'c16', 'merged'):5.2f}"
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
    report(f"sqlite      raw driver, 1 connection      {_rate(rates, 'raw'):8.0f}/s")
    for concurrency in (1, 16):
        rate = _rate(rates, f"c{concurrency}")
        ratio = _ratio(rates, f"c{concurrency}", "raw")
        note = verdict(ratio, 0.7) if concurrency == 16 else ""
        report(
            f"sqlite      JobManager, concurrency {concurrency:2}   {rate:8.0f}/s"
            f"  ratio {ratio:5.2f}  {note}"
        )


async def bench_http() -> None:
    report(
        f"== HTTP transitions (wrk, {http.CONNECTIONS} connections, {http.DURATION_S}s, "
        f"{HTTP_ROUNDS} rounds): PATCH on `jobpulse serve` vs a hello-world FastAPI PATCH, "
        "side by side; pinned (servers on one core, wrk on the other), then unpinned; "
        "ratios are medians"
    )
    async with contextlib.AsyncExitStack() as stack:
        loads = {"hello": await stack.enter_async_context(http.hello_world())}
        for kind in KINDS:
            rounds = 2 * HTTP_ROUNDS
            loads[kind] = await stack.enter_async_context(http.jobpulse(kind, rounds=rounds))
        pinned = await http.side_by_side(loads, rounds=HTTP_ROUNDS)
        unpinned = await http.side_by_side(
            loads, rounds=HTTP_ROUNDS, pin=False, first_round=HTTP_ROUNDS
        )
    for label, runs in (("pinned", pinned), ("unpinned", unpinned)):
        report(f"-- {label}")
        report_rounds(runs)
        for kind in KINDS:
            target = 0.5 if label == "pinned" else None
            report_ratio(runs, kind, "hello", f"of hello-world, {label}", target)


async def bench_tracing() -> None:
    report(
        "== telemetry cost: PATCH transitions on SQLite, side by side on one core: tracing off; "
        "on, every span kept in memory; on, one trace in ten sampled. Metrics are on in all; "
        f"{HTTP_ROUNDS} rounds, ratios are medians"
    )
    commands = {"off": http.PLAIN, "on": http.TRACED, "sampled": http.SAMPLED}
    async with contextlib.AsyncExitStack() as stack:
        loads = {
            name: await stack.enter_async_context(http.jobpulse("sqlite", command, HTTP_ROUNDS))
            for name, command in commands.items()
        }
        runs = await http.side_by_side(loads, rounds=HTTP_ROUNDS)
    report_rounds(runs)
    report_ratio(runs, "off", "on", "off/on", 1.15, at_most=True)
    report_ratio(runs, "off", "sampled", "off/sampled", None)


def report_rounds(runs: dict[str, list[http.Run]]) -> None:
    """Each round's rate and CPU a request of each server, and the cores it used (pinned,
    its share of the one core: a server that sleeps, as on an fsync, leaves the others more).
    """
    for turn in range(HTTP_ROUNDS):
        report("  ".join(_described(name, r[turn]) for name, r in runs.items()))


def _described(name: str, run: http.Run) -> str:
    used = run.rate * run.cpu_per_request
    return f"{name} {run.rate:6.0f}/s {run.cpu_per_request * 1e6:5.0f} us CPU/req {used:4.2f} cores"


def report_ratio(
    runs: dict[str, list[http.Run]],
    top: str,
    bottom: str,
    label: str,
    target: float | None,
    *,
    at_most: bool = False,
) -> None:
    """The median ratio of `top`'s rate to `bottom`'s, and of their costs (CPU per request)."""
    pairs = list(zip(runs[top], runs[bottom], strict=True))
    by_rate = statistics.median(a.rate / b.rate for a, b in pairs)
    by_cpu = statistics.median(b.cpu_per_request / a.cpu_per_request for a, b in pairs)
    note = "(informational)" if target is None else verdict(by_rate, target, at_most=at_most)
    report(f"{top:10}  {label}: {by_rate:5.2f}  by CPU per request {by_cpu:5.2f}  {note}")


async def bench_webhooks() -> None:
    report(
        f"== webhooks: callbacks/s `jobpulse worker` drains from a backlog of {webhooks.BACKLOG}"
        f" vs a raw aiohttp POST loop ({webhooks.CONCURRENCY} at a time, same receiver, timed by"
        f" it; median of {webhooks.ROUNDS} alternating rounds; raw httpx as a reference); "
        "PATCH-to-receiver latency"
    )
    for kind in KINDS:
        rates = await webhooks.throughput(kind)
        ratios = [ours / raw for ours, raw in zip(rates["ours"], rates["raw"], strict=True)]
        ratio = statistics.median(ratios)
        report(
            f"{kind:10}  delivered {statistics.median(rates['ours']):7.0f}/s  raw aiohttp "
            f"{statistics.median(rates['raw']):7.0f}/s  ratio {ratio:5.2f} "
            f"({', '.join(f'{r:.2f}' for r in ratios)})  {verdict(ratio, 0.6)}"
            f"  (raw httpx {rates['httpx'][0]:7.0f}/s)"
        )
        report(
            f"{kind:10}  CPU a callback: worker {statistics.median(rates['ours_cpu']) * 1e6:5.0f}"
            f" µs, raw loop {statistics.median(rates['raw_cpu']) * 1e6:5.0f} µs (informational)"
        )
        delays = await webhooks.latency(kind)
        p50, p99 = delays["p50"] * 1e3, delays["p99"] * 1e3
        met = "met" if p50 <= 10 and p99 <= 250 else "MISSED"
        report(
            f"{kind:10}  latency p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
            f"  (targets <= 10 / <= 250 ms: {met})"
        )


async def bench_imports() -> None:
    report("== SDK import: a fresh interpreter importing jobpulse.client vs importing httpx")
    times = imports.measure()
    ratio = times["jobpulse.client"] / times["httpx"]
    report(
        f"jobpulse.client {times['jobpulse.client'] * 1e3:6.1f} ms  httpx "
        f"{times['httpx'] * 1e3:6.1f} ms  ratio {ratio:5.2f}  {verdict(ratio, 2.0, at_most=True)}"
    )


async def bench_retention() -> None:
    report(
        f"== retention: jobs pruned/s from {retention.JOBS} ended jobs (with events and attempts), "
        f"batches of {retention.BATCH}, vs a raw-driver loop of the same statements"
    )
    for kind in KINDS:
        rates = await retention.measure(kind)
        ratio = rates["ours"] / rates["raw"]
        report(
            f"{kind:10}  retention.prune {rates['ours']:8.0f}/s  raw {rates['raw']:8.0f}/s"
            f"  ratio {ratio:5.2f}  {verdict(ratio, 0.7)}"
        )
        p99s = await retention.writer_p99(kind)
        slowed = p99s["pruning"] / p99s["alone"]
        report(
            f"{kind:10}  a writer's p99 while pruning {p99s['pruning'] * 1e3:6.2f} ms, alone "
            f"{p99s['alone'] * 1e3:6.2f} ms  ratio {slowed:5.2f}  "
            f"{verdict(slowed, 2.0, at_most=True)}"
        )
        report(
            f"{kind:10}  the prune meanwhile {p99s['rate']:8.0f}/s (it makes way for the writer)"
        )


async def bench_batches() -> None:
    report(
        f"== LLM batch polling: one round over {batches.BATCHES} due batches, the fake providers "
        f"answering in {batches.ANSWER_S * 1e3:.0f} ms, {batches.CONCURRENCY} at a time; vs the "
        "ideal (batches x answer / concurrency) and a raw aiohttp GET loop"
    )
    for kind in KINDS:
        seconds = await batches.measure(kind)
        ratio = seconds["ours"] / seconds["ideal"]
        report(
            f"{kind:10}  round {seconds['ours']:6.2f} s  ideal {seconds['ideal']:6.2f} s"
            f"  raw aiohttp {seconds['raw']:6.2f} s  ratio to ideal {ratio:5.2f}"
            f"  {verdict(ratio, 1.3, at_most=True)}"
            f"  ours/raw {seconds['ours'] / seconds['raw']:5.2f}"
        )


STATS_SIZES = [int(n) for n in os.environ.get("BENCH_STATS_SIZES", "10000,1000000").split(",")]


async def bench_stats() -> None:
    report(
        "== /v1/stats over HTTP on `jobpulse serve`, jobs spread over 30 days: the last 24 h "
        "by the hour, 30 days by the day; /v1/jobs/count?status=running (p50 / p99)"
    )
    for kind in KINDS:
        by_size = {size: await stats.measure(kind, size) for size in STATS_SIZES}
        for size, figures in by_size.items():
            for name, times in figures.items():
                note = ""
                if size == max(STATS_SIZES):
                    note = verdict(times["p99"] * 1e3, 250, at_most=True).replace(
                        "target <= 250", "target p99 <= 250 ms"
                    )
                report(
                    f"{kind:10}  {size:>9} jobs  {name:13} p50 {times['p50'] * 1e3:7.1f} ms"
                    f"  p99 {times['p99'] * 1e3:7.1f} ms  {note}"
                )
        smallest, largest = min(by_size), max(by_size)
        if smallest != largest:
            for name in ("stats 24h", "stats 30d"):
                growth = by_size[largest][name]["p99"] / by_size[smallest][name]["p99"]
                report(
                    f"{kind:10}  {name} p99 at {largest} / at {smallest}: {growth:6.2f}"
                    f"  {verdict(growth, 2.0, at_most=True)}"
                )


async def bench_fanout() -> None:
    report(
        f"== SSE fan-out: {fanout.STREAMS} open streams; event lag at {fanout.RATE} "
        f"transitions/s; PATCH transitions/s at full speed ({fanout.CALLERS} callers) with "
        "the streams open vs none (server on one core, clients on the other)"
    )
    for kind in KINDS:
        figures = await fanout.measure(kind)
        lag = figures["p99"] * 1e3
        ratio = figures["busy"] / figures["quiet"]
        report(
            f"{kind:10}  lag p50 {figures['p50'] * 1e3:6.1f} ms  p99 {lag:6.1f} ms"
            f"  ({figures['delivered']:.0%} of events delivered)"
            f"  {verdict(lag, 200, at_most=True).replace('<= 200', 'p99 <= 200 ms')}"
        )
        report(
            f"{kind:10}  transitions/s with streams {figures['busy']:7.0f}  without "
            f"{figures['quiet']:7.0f}  ratio {ratio:5.2f}  {verdict(ratio, 0.8)}"
        )


async def bench_fairness() -> None:
    report(
        f"== reads beside writes on `jobpulse serve`, {fairness.JOBS} jobs over a year: "
        f"heartbeats ({fairness.WRITERS} callers) alone, and beside {fairness.READERS} clients "
        "of one member key asking for heavy /v1/stats at once (366 days by the day; 30 days by "
        f"the hour under a metadata filter) honouring Retry-After; {fairness.ROUNDS} rounds of "
        f"{fairness.SECONDS:g} s each, alternating"
    )
    for kind in KINDS:
        figures = (await fairness.measure(kind, {"defaults": {}}))["defaults"]
        alone, loaded, answers = figures["alone"], figures["loaded"], figures["readers"]
        ratio = loaded["p99"] / alone["p99"]
        report(
            f"{kind:10}  heartbeat p99 beside the reads {loaded['p99'] * 1e3:7.1f} ms, alone "
            f"{alone['p99'] * 1e3:6.1f} ms  ratio {ratio:5.2f}  {verdict(ratio, 2.0, at_most=True)}"
        )
        others = {status: n for status, n in answers.items() if status not in ("200", "429")}
        report(
            f"{kind:10}  heartbeats/s {loaded['writes_per_s']:5.0f} beside, "
            f"{alone['writes_per_s']:5.0f} alone (failed: {loaded['failed'] + alone['failed']}); "
            "stats answered 200 "
            f"{answers.get('200', 0)}, 429 {answers.get('429', 0)}, other {others or 'none'}"
        )
        took = figures["answered"]
        report(
            f"{kind:10}  a figures answer took (median, from asking to the answer, beside the "
            f"writes): a year by the day {took.get('p50_0', float('nan')) * 1e3:6.0f} ms, "
            f"30 days by the hour filtered {took.get('p50_1', float('nan')) * 1e3:6.0f} ms"
        )


async def bench_workers() -> None:
    report(
        f"== workers: PATCH transitions/s on PostgreSQL (wrk, {http.CONNECTIONS} connections, "
        f"{http.DURATION_S}s, {HTTP_ROUNDS} alternating rounds), `serve --workers 2` vs `serve`, "
        "neither pinned; ratios are medians"
    )
    measured = await workers.measure(HTTP_ROUNDS)
    report_rounds(measured.runs)
    report_ratio(measured.runs, "two", "one", "two workers / one", 1.3)
    idle = {name: statistics.median(shares) for name, shares in measured.idle.items()}
    report(
        f"the machine idle while loaded (medians): one worker {idle['one']:.0%}, two "
        f"{idle['two']:.0%}: the room a second worker had, beside PostgreSQL and wrk "
        "(informational)"
    )


SECTIONS = {
    "transitions": bench_transitions,
    "creates": bench_creates,
    "sqlite_cpu": bench_cpu_bound_sqlite,
    "http": bench_http,
    "tracing": bench_tracing,
    "webhooks": bench_webhooks,
    "listing": bench_listing,
    "imports": bench_imports,
    "retention": bench_retention,
    "batches": bench_batches,
    "stats": bench_stats,
    "fanout": bench_fanout,
    "writepath": bench_writepath,
    "redesign": bench_redesign,
    "fairness": bench_fairness,
    "usage": bench_usage,
    "alerts": bench_alerts,
    "bulk": bench_bulk,
    "llmsdk": bench_llmsdk,
    "integrations": bench_integrations,
    "executors": bench_executors,
    "workers": bench_workers,
}


async def main() -> None:
    chosen = os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",")
    for name in chosen:
        await SECTIONS[name.strip()]()


if __name__ == "__main__":
    uvloop.run(main())

"""`make bench`'s sections of the features beside the jobs: LLM usage, alert rules, bulk
actions, the LLM SDK instrumentation and the executor integrations.
"""

from __future__ import annotations

import asyncio
import os

from benchmarks import alerts, bulk, executors, integrations, llmsdk, stats, usage
from benchmarks.reporting import KINDS, report, verdict
from jobpulse.bulk.rules import BATCH_SIZE


async def bench_usage() -> None:
    jobs_per_round = int(os.environ.get("BENCH_USAGE_JOBS", "400"))
    rounds = int(os.environ.get("BENCH_USAGE_ROUNDS", "3"))
    report(
        f"== LLM usage: {usage.RECORDS} concurrent usage records of each job, one job after "
        f"another, vs {usage.RECORDS} callers walking jobs through their transitions (same "
        f"database, {rounds} alternating rounds, medians)"
    )
    for kind in KINDS:
        rates = await usage.measure_ratio(kind, jobs_per_round, rounds)
        ratio = rates["records"] / rates["transitions"]
        report(
            f"{kind:10}  records/s {rates['records']:7.0f}  transitions/s "
            f"{rates['transitions']:7.0f}  ratio {ratio:5.2f}  {verdict(ratio, 0.8)}"
        )
    sizes = [int(n) for n in os.environ.get("BENCH_USAGE_SIZES", "1000000").split(",")]
    report(
        "== /v1/stats with usage: jobs over 30 days, each with one LLM call (three models), "
        f"on `jobpulse serve`; p50/p99 of {stats.SAMPLES} sequential requests"
    )
    for kind in KINDS:
        for size in sizes:
            for name, figures in (await usage.measure_stats(kind, size)).items():
                worst = figures["p99"] * 1e3
                note = verdict(worst, 250, at_most=True)
                if name in usage.MEMBER_QUERIES:
                    note = f"(informational, {usage.MEMBER_SAMPLES} requests)"
                report(
                    f"{kind:10}  {size:>8} jobs  {name:18} p50 {figures['p50'] * 1e3:6.1f} ms"
                    f"  p99 {worst:6.1f} ms  {note}"
                )


async def bench_alerts() -> None:
    sizes = [int(n) for n in os.environ.get("BENCH_ALERT_SIZES", "1000000").split(",")]
    report(
        f"== alert rules: one evaluation round of {alerts.RULES} rules (failure rate 1 h and "
        "24 h, TTFT and duration p99, stuck jobs; a third on one user) over jobs spread over "
        "30 days, vs one 24-hour figures read of the organization (medians of "
        f"{alerts.ROUNDS}); target: a round within a tenth of the default interval (60 s)"
    )
    for kind in KINDS:
        for size in sizes:
            figures = await alerts.measure(kind, size)
            per_rule = figures["round"] / alerts.RULES
            share = figures["round"] / alerts.INTERVAL_S
            report(
                f"{kind:10}  {size:>9} jobs  round {figures['round'] * 1e3:8.1f} ms  per rule "
                f"{per_rule * 1e3:6.2f} ms  24 h read {figures['read'] * 1e3:7.1f} ms  "
                f"round / interval {share:.4f}  {verdict(share, 0.1, at_most=True)}"
            )


async def bench_bulk() -> None:
    report(
        f"== bulk cancel of {bulk.JOBS} matching jobs (batches of {BATCH_SIZE}) while another "
        "task moves other jobs through pending, running, completed: its p99 during the bulk "
        "cancel vs alone"
    )
    for kind in KINDS:
        figures = await bulk.measure(kind)
        ratio = figures["during"] / figures["alone"]
        report(
            f"{kind:10}  transition p99 during {figures['during'] * 1e3:6.2f} ms, alone "
            f"{figures['alone'] * 1e3:6.2f} ms  ratio {ratio:5.2f}  "
            f"{verdict(ratio, 2.0, at_most=True)}"
        )
        report(
            f"{kind:10}  the bulk cancel: {figures['changed']:.0f} jobs in "
            f"{figures['seconds']:5.1f} s ({figures['rate']:6.0f}/s), "
            f"{figures['transitions']:.0f} other transitions meanwhile"
        )


async def bench_llmsdk() -> None:
    report(
        f"== LLM SDK instrumentation: per streamed chunk, jobpulse's reading of the official "
        f"clients' streams vs the bare stream, {llmsdk.CHUNKS} real chunks, best of "
        f"{llmsdk.ROUNDS} alternating rounds; end to end through the SDK from loopback "
        "(informational)"
    )
    figures = await asyncio.to_thread(llmsdk.measure)
    for name, times in figures.items():
        overhead = (times["observed"] - times["bare"]) * 1e6
        note = "(informational)" if name == "end to end" else verdict(overhead, 5.0, at_most=True)
        report(
            f"{name:10}  bare {times['bare'] * 1e6:6.2f} us/chunk  observed "
            f"{times['observed'] * 1e6:6.2f} us/chunk  overhead {overhead:5.2f} us  {note}"
        )


def _report_drains(name: str, figures: dict[str, float]) -> None:
    """A worker's figures: tasks/s and CPU per task without and with the integration."""
    ratio, cpu_ratio = figures["ratio"], figures["cpu_ratio"]
    report(
        f"{name:10}  without {figures['plain']:6.0f}/s  with {figures['instrumented']:6.0f}/s"
        f"  ratio {ratio:5.2f}  {verdict(ratio, 0.9)}"
    )
    report(
        f"{name:10}  CPU a task without {figures['plain_cpu'] * 1e6:6.0f} us  with "
        f"{figures['instrumented_cpu'] * 1e6:6.0f} us  ratio {cpu_ratio:5.2f}  "
        "(informational: the integration's own cost, wherever jobpulse runs)"
    )
    p50, p99 = figures["p50"], figures["p99"]
    target = verdict(p99, 1.0, at_most=True).replace("<= 1.0", "p99 <= 1 s")
    report(
        f"{name:10}  {figures['reports']:.0f} reports  delay p50 {p50 * 1e3:7.1f} ms"
        f"  p99 {p99 * 1e3:7.1f} ms  {target}"
    )


DRAINS = (
    "the worker on one core, `jobpulse serve` (SQLite) on the other; medians of {rounds} "
    "alternating rounds: tasks/s with ÷ without; the worker process's CPU per task (its "
    "threads, the reporter's included, and its reaped children) without ÷ with; the delay "
    "from a task's hook to jobpulse's answer"
)


async def bench_integrations() -> None:
    report(
        f"== Celery integration: a no-op task, {integrations.TASKS} a round drained by one "
        "solo worker from Redis, with the integration and without; "
        + DRAINS.format(rounds=integrations.ROUNDS)
    )
    _report_drains("celery", await integrations.measure())


async def bench_executors() -> None:
    report(
        f"== executors: no-op tasks ({', '.join(f'{k} {n}' for k, n in executors.TASKS.items())}"
        ") a round drained by one worker from "
        "Redis (RQ's forking Worker and its SimpleWorker, Dramatiq with 8 threads, arq with 10 "
        "jobs at a time), instrumented and not; " + DRAINS.format(rounds=executors.ROUNDS)
    )
    for name, figures in (await executors.measure()).items():
        _report_drains(name, figures)

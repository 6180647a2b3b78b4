"""The commands that go through a server's HTTP API: jobs, batches, demo."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from jobpulse.cli.root import Key, Url, app, batches_app, exit_on_error, jobs_app, new_table, out


def _client(url: str, key: str) -> Any:
    from jobpulse.client import JobPulse

    return JobPulse(url, key)


def _seconds(nanoseconds: int | None) -> str:
    return "" if nanoseconds is None else f"{nanoseconds / 1e9:.3f}s"


@jobs_app.command("list")
def jobs_list(
    url: Url = "http://127.0.0.1:8000",
    key: Key = "",
    status: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    job_type: str | None = None,
    stop_reason: str | None = None,
    source_id: str | None = None,
    active: bool | None = None,
    stuck: bool | None = None,
    user_id: str | None = None,
    limit: int = 50,
    ascending: bool = False,
    before: str | None = None,
    after: str | None = None,
) -> None:
    """List jobs, newest first."""
    filters = {
        "status": status,
        "job_type": job_type,
        "stop_reason": stop_reason,
        "source_id": source_id,
        "active": active,
        "stuck": stuck,
        "user_id": user_id,
        "limit": limit,
        "ascending": ascending,
        "before": before,
        "after": after,
    }
    with _client(url, key) as client:
        jobs = exit_on_error(lambda: client.list_jobs(**filters))
    table = new_table("id", "type", "status", "stop reason", "created", "ttft", "duration")
    for job in jobs:
        table.add_row(
            job.id,
            job.job_type,
            job.status,
            job.stop_reason or "",
            job.created_at.isoformat(timespec="seconds"),
            _seconds(job.ttft_ns),
            _seconds(job.total_duration_ns),
        )
    out.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, url: Url = "http://127.0.0.1:8000", key: Key = "") -> None:
    """Show one job as JSON."""
    with _client(url, key) as client:
        job = exit_on_error(lambda: client.get_job(job_id))
    print(json.dumps(job.model_dump(mode="json"), indent=2))


@jobs_app.command("events")
def jobs_events(job_id: str, url: Url = "http://127.0.0.1:8000", key: Key = "") -> None:
    """Show a job's history, rejected attempts included."""
    with _client(url, key) as client:
        events = exit_on_error(lambda: client.list_events(job_id))
    table = new_table("at", "from", "to", "stop reason", "applied", "reason", "actor")
    for event in events:
        table.add_row(
            event.at.isoformat(timespec="milliseconds"),
            event.from_status or "",
            event.to_status,
            event.stop_reason or "",
            "yes" if event.applied else "REJECTED",
            event.reason or "",
            event.actor or "",
        )
    out.print(table)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str,
    url: Url = "http://127.0.0.1:8000",
    key: Key = "",
    reason: str | None = None,
) -> None:
    """Cancel a job."""
    with _client(url, key) as client:
        job = exit_on_error(lambda: client.cancel_job(job_id, reason))
    out.print(f"{job.id} {job.status}")


@batches_app.command("add")
def batches_add(
    provider: Annotated[str, typer.Option(help="anthropic or openai.")],
    batch_id: Annotated[str, typer.Option(help="The provider's batch id.")],
    callback_url: Annotated[str | None, typer.Option(help="Called when it ends.")] = None,
    url: Url = "http://127.0.0.1:8000",
    key: Key = "",
) -> None:
    """Register a provider batch; the server polls it and ends its job when it ends."""
    with _client(url, key) as client:
        job = exit_on_error(
            lambda: client.track_batch(provider, batch_id, callback_url=callback_url)
        )
    out.print(job.id, highlight=False)


@app.command()
def demo(
    url: Url = "http://127.0.0.1:8000",
    key: Key = "",
    jobs: Annotated[int, typer.Option(help="How many jobs to run.")] = 60,
    speed: Annotated[float, typer.Option(help="Time scale: 2 runs twice as fast.")] = 1.0,
    batches: Annotated[int, typer.Option(help="How many LLM batches to follow.")] = 3,
    provider_port: Annotated[
        int, typer.Option(help="The port of the demo's batch provider (0: any free one).")
    ] = 0,
    callbacks: Annotated[
        bool, typer.Option(help="Send callbacks to a receiver the demo runs.")
    ] = True,
) -> None:
    """Run a realistic simulated workload against a server, so there is something to see:
    jobs with steps and callbacks, failures, cancellations, stuck runs, LLM batches.
    """
    from jobpulse.demo.workload import run_demo

    summary = exit_on_error(
        lambda: run_demo(
            url,
            key,
            jobs,
            speed,
            batches=batches,
            provider_port=provider_port,
            callbacks=callbacks,
        )
    )
    for line in summary.lines():
        out.print(line)

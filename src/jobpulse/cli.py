"""The `jobpulse` command: serve | migrate | prune | keys | jobs | batches | demo. Thin: the
work is elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from jobpulse.config import Settings
from jobpulse.errors import JobPulseError

app = typer.Typer(help="Track, guard and watch background jobs.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
jobs_app = typer.Typer(help="Look at and cancel jobs through the HTTP API.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
batches_app = typer.Typer(
    help="Follow LLM provider batches as jobs, through the HTTP API.", no_args_is_help=True
)
app.add_typer(batches_app, name="batches")

# Piped output is not cut to a terminal's width: scripts get whole ids.
out = Console(width=None if sys.stdout.isatty() else 250)
err = Console(stderr=True)
T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="sqlite:///path or postgresql://… (default: JOBPULSE_DATABASE_URL)"),
]
Url = Annotated[str, typer.Option(envvar="JOBPULSE_URL", help="The jobpulse server.")]
Key = Annotated[str, typer.Option(envvar="JOBPULSE_API_KEY", help="An API key.")]


def _settings(database_url: str | None) -> Settings:
    return Settings(database_url=database_url) if database_url else Settings()


def _run(action: Callable[[], T]) -> T:
    """Run `action`, turning a jobpulse error into a message and exit status 1."""
    try:
        return action()
    except JobPulseError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    database_url: DatabaseUrl = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="JOBPULSE_WORKERS",
            help="Processes serving the port (more than 1 needs PostgreSQL).",
        ),
    ] = 1,
) -> None:
    """Migrate the database, then serve the API (SIGTERM drains and exits 0)."""
    from jobpulse.storage.sql_store import served

    # uvicorn drains on SIGTERM, then re-raises it to this handler: ending there is a clean exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    settings = _settings(database_url)
    with contextlib.ExitStack() as claim:
        _run(lambda: claim.enter_context(served(settings.database_url, workers)))
        _serve(settings, host, port, access_log, workers)


def _serve(settings: Settings, host: str, port: int, access_log: bool, workers: int) -> None:
    import uvicorn

    from jobpulse.api import create_app
    from jobpulse.api.protocol import server_options
    from jobpulse.api.workers import serve_workers
    from jobpulse.bootstrap import prepare
    from jobpulse.logs import log_config
    from jobpulse.telemetry import setup_tracing

    _raise_open_files_limit()
    setup_tracing(console=settings.trace_console)
    first_key = _run(lambda: asyncio.run(prepare(settings)))
    address = f"http://{host}:{port}"
    out.print(
        f"jobpulse {address}  (dashboard: {address}/, API docs: {address}/docs)", highlight=False
    )
    if first_key is not None:
        out.print(f"Admin API key, shown once: {first_key}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    app = _run(lambda: create_app(settings, serving=True))  # a bad price file stops here
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "timeout_graceful_shutdown": 30,
        "log_level": "info",
        "access_log": access_log,
        "log_config": log_config(settings.log_format),
    }
    if workers > 1:
        raise typer.Exit(serve_workers(settings, workers, **options))
    uvicorn.run(app, **options, **server_options(settings))


def _exit_cleanly(_signal: int, _frame: object) -> None:
    raise SystemExit(0)


def _raise_open_files_limit() -> None:
    """Raise this process's soft limit on open files to its hard limit: a server holds a file
    per connection (up to JOBPULSE_MAX_CONNECTIONS), and many systems start processes at 1,024.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@app.command()
def worker(database_url: DatabaseUrl = None) -> None:
    """Deliver webhooks without serving the API (`serve` delivers too)."""
    import uvloop

    from jobpulse.storage.sql_store import open_store
    from jobpulse.webhooks.delivery import Deliverer, new_client

    signal.signal(signal.SIGTERM, _exit_cleanly)
    settings = _settings(database_url)

    async def deliver() -> None:
        store = open_store(settings)
        try:
            async with new_client(settings) as http:
                await Deliverer(store, settings, http).run()
        finally:
            await store.close()

    out.print("delivering webhooks (Ctrl-C or SIGTERM stops)")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        _run(lambda: uvloop.run(deliver()))


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema up to date."""
    from jobpulse.storage.migrate import upgrade

    settings = _settings(database_url)
    _run(lambda: asyncio.run(upgrade(settings.database_url)))
    out.print("database is up to date")


def _period(text: str) -> timedelta:
    """`30d`, `12h`, `90m` or `3600s` as a timedelta."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    number, unit = text[:-1], text[-1:]
    try:
        return timedelta(**{units[unit]: float(number)})
    except (KeyError, ValueError, OverflowError):
        raise typer.BadParameter(f"{text!r}: write a number and d, h, m or s, e.g. 30d") from None


@app.command()
def prune(
    older_than: Annotated[str, typer.Option(help="Age past which to remove: 30d, 12h, 90m.")],
    dry_run: Annotated[bool, typer.Option(help="Count only; remove nothing.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove ended jobs (with their history, steps and attempts) and finished webhooks older
    than --older-than, in short batches; active jobs and undelivered webhooks stay.
    """
    from jobpulse.jobs.manager import JobManager
    from jobpulse.retention.pruner import prune

    period = _period(older_than)

    async def run() -> dict[str, int]:
        jobs = JobManager.from_settings(_settings(database_url))
        try:
            return await prune(jobs, period, dry_run=dry_run)
        finally:
            await jobs.close()

    counts = _run(lambda: asyncio.run(run()))
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb}: " + ", ".join(f"{number} {kind}" for kind, number in counts.items()))


def _with_keys(database_url: str | None, use: Callable[[Any], Any]) -> Any:
    from jobpulse.keys import KeyManager
    from jobpulse.storage.sql_store import open_store

    async def run() -> Any:
        store = open_store(_settings(database_url))
        try:
            return await use(KeyManager(store))
        finally:
            await store.close()

    return _run(lambda: asyncio.run(run()))


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="The user the key acts as.")],
    org: Annotated[str, typer.Option(help="The organization of that user.")],
    admin: Annotated[bool, typer.Option(help="See the whole organization.")] = False,
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print it, alone, on stdout (it is not stored and not shown again)."""

    async def create(keys: Any) -> str:
        _key, secret = await keys.create(
            organization_id=org, user_id=user, is_admin=admin, name=name
        )
        return str(secret)

    print(_with_keys(database_url, create))


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = None) -> None:
    """List keys (never their secrets)."""
    keys = _with_keys(database_url, lambda manager: manager.list())
    table = _table("id", "prefix", "organization", "user", "role", "created", "revoked")
    for key in keys:
        role = "admin" if key.is_admin else "member"
        revoked = key.revoked_at.isoformat() if key.revoked_at else ""
        created = key.created_at.isoformat(timespec="seconds")
        table.add_row(key.id, key.prefix, key.organization_id, key.user_id, role, created, revoked)
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, database_url: DatabaseUrl = None) -> None:
    """Revoke a key by id."""
    _with_keys(database_url, lambda manager: manager.revoke(key_id))
    out.print(f"revoked {key_id}")


def _client(url: str, key: str) -> Any:
    from jobpulse.client import JobPulse

    return JobPulse(url, key)


def _table(*headers: str) -> Table:
    """A table whose first column (an id or a time) is never cut; the others wrap."""
    table = Table()
    table.add_column(headers[0], no_wrap=True)
    for header in headers[1:]:
        table.add_column(header, overflow="fold")
    return table


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
        jobs = _run(lambda: client.list_jobs(**filters))
    table = _table("id", "type", "status", "stop reason", "created", "ttft", "duration")
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
        job = _run(lambda: client.get_job(job_id))
    print(json.dumps(job.model_dump(mode="json"), indent=2))


@jobs_app.command("events")
def jobs_events(job_id: str, url: Url = "http://127.0.0.1:8000", key: Key = "") -> None:
    """Show a job's history, rejected attempts included."""
    with _client(url, key) as client:
        events = _run(lambda: client.list_events(job_id))
    table = _table("at", "from", "to", "stop reason", "applied", "reason", "actor")
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
        job = _run(lambda: client.cancel_job(job_id, reason))
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
        job = _run(lambda: client.track_batch(provider, batch_id, callback_url=callback_url))
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

    summary = _run(
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


def main() -> None:
    """The console script."""
    app()

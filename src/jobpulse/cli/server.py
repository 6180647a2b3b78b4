"""The commands that work on the database itself: serve, worker, migrate, prune."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import timedelta
from typing import Annotated, Any

import typer

from jobpulse.cli.root import DatabaseUrl, app, exit_on_error, out, settings_of
from jobpulse.config import Settings


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    database_url: DatabaseUrl = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes serving the port (more than 1 needs PostgreSQL).")
    ] = 1,
) -> None:
    """Migrate the database, then serve the API (SIGTERM drains and exits 0)."""
    from jobpulse.storage.sql_store import served

    # uvicorn drains on SIGTERM, then re-raises it to this handler: ending there is a clean exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    settings = settings_of(database_url)
    with contextlib.ExitStack() as claim:
        exit_on_error(lambda: claim.enter_context(served(settings.database_url, workers)))
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
    first_key = exit_on_error(lambda: asyncio.run(prepare(settings)))
    address = f"http://{host}:{port}"
    out.print(
        f"jobpulse {address}  (dashboard: {address}/, API docs: {address}/docs)", highlight=False
    )
    if first_key is not None:
        out.print(f"Admin API key, shown once: {first_key}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    app = exit_on_error(lambda: create_app(settings, serving=True))  # a bad price file stops here
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

    from jobpulse.heap import settle_heap
    from jobpulse.storage.sql_store import open_store
    from jobpulse.telemetry import setup_tracing
    from jobpulse.webhooks.delivery import Deliverer, new_client

    settings = settings_of(database_url)
    # Its deliveries' spans are exported as `serve`'s are; and, tracing settled, a delivery
    # asks a flag whether to make one (not OpenTelemetry, which reads the environment).
    setup_tracing(console=settings.trace_console)

    async def deliver() -> None:
        store = open_store(settings)
        try:
            async with new_client(settings) as http:
                deliverer = Deliverer(store, settings, http)
                settle_heap(settings.gc_threshold)  # as `serve` does once started
                delivering = asyncio.create_task(deliverer.run())
                await _until_signalled(delivering)
                if delivering.done():
                    delivering.result()  # its error, if it ended on one
                else:
                    await deliverer.stop(delivering)
        finally:
            await store.close()

    out.print("delivering webhooks (Ctrl-C or SIGTERM stops)")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C while it stops
        exit_on_error(lambda: uvloop.run(deliver()))


async def _until_signalled(task: asyncio.Task[None]) -> None:
    """Until SIGTERM or SIGINT comes, or `task` ends. A signal is handled on the event loop,
    between its callbacks: raised wherever the process was, it cut sends and writes short
    (they went out again, or hung the exit waiting for a writer it had cancelled).
    """
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, signalled.set)
    waiting = asyncio.create_task(signalled.wait())
    try:
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema up to date."""
    from jobpulse.storage.migrate import upgrade

    settings = settings_of(database_url)
    exit_on_error(lambda: asyncio.run(upgrade(settings.database_url)))
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
        jobs = JobManager.from_settings(settings_of(database_url))
        try:
            return await prune(jobs, period, dry_run=dry_run)
        finally:
            await jobs.close()

    counts = exit_on_error(lambda: asyncio.run(run()))
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb}: " + ", ".join(f"{number} {kind}" for kind, number in counts.items()))

"""The `jobpulse` command's root: its groups, consoles and shared options, and how a command
turns a jobpulse error into a message and exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

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


def settings_of(database_url: str | None) -> Settings:
    return Settings(database_url=database_url) if database_url else Settings()


def exit_on_error(action: Callable[[], T]) -> T:
    """Run `action`, turning a jobpulse error into a message and exit status 1."""
    try:
        return action()
    except JobPulseError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


def new_table(*headers: str) -> Table:
    """A table whose first column (an id or a time) is never cut; the others wrap."""
    table = Table()
    table.add_column(headers[0], no_wrap=True)
    for header in headers[1:]:
        table.add_column(header, overflow="fold")
    return table

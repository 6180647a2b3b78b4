"""Schema migrations with Alembic, shipped inside the package."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from jobpulse.storage.engine import run_in_transaction


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration for the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", "jobpulse.storage:migrations")
    config.attributes["connection"] = connection
    return config


def _run(connection: Connection, action: str, *args: Any) -> None:
    getattr(command, action)(alembic_config(connection), *args)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`."""
    await run_in_transaction(url, _run, "upgrade", revision)

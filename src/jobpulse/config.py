"""Settings read from the environment (prefix JOBPULSE_); built by whoever needs them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything jobpulse can be told from outside."""

    model_config = SettingsConfigDict(env_prefix="JOBPULSE_", extra="ignore")

    #: `sqlite:///path` (embedded, the default) or `postgresql://user@host/db`.
    database_url: str = "sqlite:///./jobpulse.db"
    #: SQLite's fsync policy. FULL (SQLite's default) never loses a committed transaction;
    #: NORMAL, common with WAL, may lose the last ones on power loss but never corrupts.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: Connections kept for reads (and, on PostgreSQL, for the writers).
    pool_size: int = Field(default=10, ge=1)
    #: Requests committed together by one writer transaction at most.
    write_batch_max: int = Field(default=128, ge=1)
    #: Writer connections on PostgreSQL (SQLite always has exactly one writer).
    postgres_writers: int = Field(default=4, ge=1)

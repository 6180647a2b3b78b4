"""A worker that reports jobs imports the SDK alone: none of the server comes with it."""

from __future__ import annotations

import subprocess
import sys

#: What only the server needs.
SERVER_MODULES = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "uvicorn",
    "alembic",
    "asyncpg",
    "aiohttp",
    "opentelemetry.sdk",
    "pydantic_settings",
)


def loaded_after(statement: str) -> set[str]:
    """The server modules a fresh interpreter holds after running `statement`."""
    probe = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(done.stdout.split())
    return {name for name in SERVER_MODULES if name in modules}


def test_the_sdk_imports_none_of_the_server() -> None:
    statement = "from jobpulse.client import AsyncJobPulse, JobPulse, verify_webhook"
    assert loaded_after(statement) == set()


def test_the_package_still_offers_the_server_on_first_use() -> None:
    assert loaded_after("import jobpulse") == set()
    assert "sqlalchemy" in loaded_after("from jobpulse import JobManager")

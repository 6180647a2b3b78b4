"""A worker with the RQ, Dramatiq or arq integration loads nothing of the server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER = {"fastapi", "starlette", "sqlalchemy", "alembic", "asyncpg", "aiohttp", "uvicorn"}


@pytest.mark.parametrize("executor", ["rq", "dramatiq", "arq"])
def test_the_integration_loads_its_executor_and_nothing_of_the_server(executor: str) -> None:
    code = (
        f"import json, sys, jobpulse.integrations.{executor}; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert executor in loaded
    assert loaded & SERVER == set()

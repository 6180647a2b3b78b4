"""What a worker installs: `pip install <the repository>` in a fresh virtualenv holds the SDK
and none of the server's dependencies; `jobpulse.client` imports and talks to a real server,
and the `jobpulse` command says which extra it needs.
"""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

from tests.e2e.conftest import close, start

ROOT = Path(__file__).resolve().parents[2]
#: The server's dependencies (distribution names as `pip list` spells them, lowercased).
SERVER_DISTRIBUTIONS = frozenset(
    {
        "fastapi",
        "starlette",
        "sqlalchemy",
        "asyncpg",
        "alembic",
        "uvicorn",
        "aiohttp",
        "opentelemetry-sdk",
        "opentelemetry-api",
        "pydantic-settings",
        "sse-starlette",
        "typer",
        "jinja2",
        "orjson",
        "uvloop",
        "prometheus-client",
    }
)


@pytest.mark.timeout(900)  # a virtualenv and an install from PyPI
def test_the_client_install_holds_none_of_the_server(tmp_path: Path) -> None:
    env_dir = tmp_path / "worker"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), f"{ROOT}[celery]"],
        check=True, timeout=900, capture_output=True,
    )  # fmt: skip
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    installed = {entry["name"].lower().replace("_", "-") for entry in json.loads(listed.stdout)}
    assert "jobpulse" in installed
    assert {"httpx", "pydantic", "celery"} <= installed
    assert installed & SERVER_DISTRIBUTIONS == set()

    # The SDK imports, with none of the server, and reports to a real server (one database
    # is enough: this is about what is installed).
    server = start(f"sqlite:///{tmp_path / 'jobpulse.db'}")
    script = (
        "import sys\n"
        "from jobpulse.client import JobPulse\n"
        "with JobPulse(sys.argv[1], sys.argv[2]) as jobpulse:\n"
        "    with jobpulse.track(job_type='from_a_worker') as run:\n"
        "        pass\n"
        "    print(jobpulse.get_job(run.id).status)\n"
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn') if m in sys.modules))\n"
    )
    try:
        done = subprocess.run(
            [python, "-c", script, server.url, server.admin_key],
            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        )  # fmt: skip
    finally:
        close(server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["completed", "[]"]

    # The Celery integration imports beside its executor, with none of the server either.
    probe = "import sys, jobpulse.integrations.celery; print('fastapi' in sys.modules)"
    imported = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "False"

    # The command line needs the server: it says which extra to install.
    serve = subprocess.run(
        [str(env_dir / "bin" / "jobpulse"), "serve"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert serve.returncode == 1
    assert "pip install 'jobpulse[server]'" in serve.stderr
    assert "Traceback" not in serve.stderr

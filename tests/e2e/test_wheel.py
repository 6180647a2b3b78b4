"""The built wheel, installed with its `server` extra into a fresh virtualenv, serves a working
dashboard: templates and static files travel in the package, nothing is fetched from the
checkout."""

from __future__ import annotations

import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)  # a virtualenv and the server's install from PyPI
def test_the_wheel_serves_the_dashboard(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    [wheel] = tmp_path.glob("jobpulse-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(
        [*pip, "-c", str(ROOT / "constraints.txt"), f"{wheel}[server]"],
        check=True, timeout=900, capture_output=True,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [str(env_dir / "bin" / "jobpulse"), "serve", "--port", str(port),
         "--database-url", f"sqlite:///{tmp_path / 'wheel.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert f"dashboard: http://127.0.0.1:{port}/" in banner, banner
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(100):
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            login = http.get("/login")
            assert login.status_code == 200
            assert 'label for="key"' in login.text
            assert http.get("/static/dashboard/dashboard.css").status_code == 200
            assert http.get("/static/dashboard/dashboard.js").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()

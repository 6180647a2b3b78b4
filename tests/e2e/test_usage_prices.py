"""`jobpulse serve` and JOBPULSE_PRICES: a bad price file is refused at start with its line
named; a good one prices the calls the real server records.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.e2e.conftest import JOBPULSE, close, start, stop


def test_serve_refuses_a_bad_price_file_naming_the_line(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[openai]\n"gpt-x" = { input = 1, output = 2 }\n"gpt-y" = { input = 1 }\n')
    done = subprocess.run(
        [JOBPULSE, "serve", "--port", "1", "--database-url", f"sqlite:///{tmp_path / 'j.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ | {"JOBPULSE_PRICES": str(prices), "COLUMNS": "300"},
    )
    assert done.returncode == 1
    assert f"{prices}, line 3: openai/gpt-y: output is missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_prices_calls_from_the_price_file(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{"acme": {"llm-1": {"input": 2, "output": 8}}}')
    server = start(f"sqlite:///{tmp_path / 'j.db'}", env={"JOBPULSE_PRICES": str(prices)})
    try:
        me = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.url, headers=me) as http:
            job_id = http.post("/v1/jobs", json={"status": "running"}).json()["id"]
            body = {"provider": "acme", "model": "llm-1", "input_tokens": 500_000}
            first = http.post(f"/v1/jobs/{job_id}/usage", json=body | {"output_tokens": 10**6})
            assert first.status_code == 201, first.text
            assert (first.json()["cost_usd"], first.json()["cost_source"]) == (9.0, "prices")
            shipped = {"provider": "openai", "model": "gpt-4.1", "output_tokens": 10**6}
            assert http.post(f"/v1/jobs/{job_id}/usage", json=shipped).json()["cost_usd"] == 8.0
            assert http.get(f"/v1/jobs/{job_id}").json()["usage"]["cost_usd"] == 17.0
        assert stop(server) == 0
    finally:
        close(server)

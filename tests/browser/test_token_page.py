"""The page of docs/tokens.md, served from another loopback origin, in headless Chromium: it
follows one run live with `EventSource` and `?access_token=` while the test moves the job
along, against a real `jobpulse serve` that lists that origin in JOBPULSE_CORS_ORIGINS; the
same page from an origin not listed gets nothing (the browser refuses the answers).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.browser.test_dashboard import browser
from tests.docs.fences import blocks
from tests.e2e.conftest import Server, close, start

__all__ = ["browser"]

PAGE = Path(__file__).parents[2] / "docs" / "tokens.md"


def documented_page() -> str:
    """The HTML page of docs/tokens.md, as written there."""
    [page] = [block.code for block in blocks(PAGE) if block.language == "html"]
    return page


class PageServer:
    """One HTML page served at / on a loopback port of its own (an origin of its own)."""

    def __init__(self) -> None:
        self.body = b""
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def pages() -> Iterator[tuple[PageServer, PageServer]]:
    """Two page origins: the first is listed in JOBPULSE_CORS_ORIGINS, the second is not."""
    listed, stranger = PageServer(), PageServer()
    yield listed, stranger
    listed.close()
    stranger.close()


@pytest.fixture
def server(empty_database_url: str, pages: tuple[PageServer, PageServer]) -> Iterator[Server]:
    served = start(empty_database_url, env={"JOBPULSE_CORS_ORIGINS": pages[0].origin})
    yield served
    close(served)


def page_for(server: Server, job_id: str, token: str) -> bytes:
    """The documented page with the values a backend fills in."""
    page = documented_page()
    for placeholder, value in (
        ('"http://127.0.0.1:8000"', f'"{server.url}"'),
        ('"job-…"', f'"{job_id}"'),
        ('"jpt_…"', f'"{token}"'),
    ):
        assert placeholder in page, placeholder
        page = page.replace(placeholder, value)
    return page.encode()


def test_a_page_of_another_origin_follows_one_run_live(
    server: Server, pages: tuple[PageServer, PageServer], browser: Browser
) -> None:
    listed, stranger = pages
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=10
    ) as http:
        job = http.post("/v1/jobs", json={"job_type": "agent_run", "status": "pending"}).json()
        other = http.post("/v1/jobs", json={"job_type": "agent_run"}).json()
        minted = http.post("/v1/tokens", json={"job_id": job["id"], "ttl_s": 300})
        assert minted.status_code == 201, minted.text
        token = minted.json()["token"]
        listed.body = page_for(server, job["id"], token)
        stranger.body = listed.body

        context = browser.new_context()
        page = context.new_page()
        refused: list[str] = []
        page.on("console", lambda message: _note_refusal(message, refused))
        page.goto(f"{listed.origin}/")
        status = page.locator("#status")
        expect(status).to_have_text("pending")  # the fetch of the job
        http.patch(f"/v1/jobs/{job['id']}", json={"status": "running"}).raise_for_status()
        expect(status).to_have_text("running")  # the stream
        http.patch(f"/v1/jobs/{other['id']}", json={"status": "running"}).raise_for_status()
        http.patch(f"/v1/jobs/{job['id']}", json={"stop_reason": "end_turn"}).raise_for_status()
        expect(status).to_have_text("completed")
        http.post(f"/v1/jobs/{other['id']}/cancel").raise_for_status()
        page.wait_for_timeout(500)
        expect(status).to_have_text("completed")  # another job's change never came
        assert refused == []

        # The same page from an origin not listed: jobpulse answers, the browser refuses.
        elsewhere = context.new_page()
        elsewhere.on("console", lambda message: _note_refusal(message, refused))
        elsewhere.goto(f"{stranger.origin}/")
        page.wait_for_timeout(1000)
        expect(elsewhere.locator("#status")).to_have_text("…")
        assert any("CORS" in text for text in refused), refused
        context.close()


def _note_refusal(message: ConsoleMessage, refused: list[str]) -> None:
    if message.type == "error":
        refused.append(message.text)

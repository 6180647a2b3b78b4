"""The demo's LLM batch provider: Anthropic's Message Batches API (the parts jobpulse polls),
on loopback, with batches that progress with time. A server started with
`JOBPULSE_ANTHROPIC_BASE_URL` set to it follows the demo's batches as it would real ones.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/v1/messages/batches/(?P<id>[\w-]+)(?P<tail>/results|/cancel)?$")


@dataclass
class Batch:
    """One batch: how many requests, when it started, whether a cancel was asked."""

    requests: int
    started: float = field(default_factory=time.monotonic)
    cancelled_at: float | None = None


class Provider:
    """The batches, served on `port` (0: any free one) until closed."""

    def __init__(self, port: int, duration_s: float) -> None:
        self.duration_s = duration_s
        self.batches: dict[str, Batch] = {}
        self.polls: Counter[str] = Counter()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider._answer(self, "GET")

            def do_POST(self) -> None:
                provider._answer(self, "POST")

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def add(self, batch_id: str, requests: int) -> None:
        self.batches[batch_id] = Batch(requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def body(self, batch_id: str) -> dict[str, Any]:
        """The batch as the API describes it now."""
        batch = self.batches[batch_id]
        now = time.monotonic()
        end = batch.cancelled_at or now
        done = min(batch.requests, int(batch.requests * (end - batch.started) / self.duration_s))
        ended = done == batch.requests or batch.cancelled_at is not None
        errored = done // 8
        counts = {
            "processing": 0 if ended else batch.requests - done,
            "succeeded": done - errored,
            "errored": errored,
            "canceled": batch.requests - done if batch.cancelled_at is not None else 0,
            "expired": 0,
        }
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": stamp,
            "expires_at": (datetime.now(UTC) + timedelta(hours=24)).isoformat(),
            "ended_at": stamp if ended else None,
            "cancel_initiated_at": stamp if batch.cancelled_at is not None else None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch_id}/results"
            if ended
            else None,
        }

    def results(self, batch_id: str) -> str:
        """One JSONL line per finished request."""
        counts = self.body(batch_id)["request_counts"]
        lines = []
        for number in range(counts["succeeded"] + counts["errored"]):
            if number < counts["errored"]:
                error = {"type": "error", "error": {"type": "overloaded_error"}}
                result: dict[str, Any] = {"type": "errored", "error": error}
            else:
                result = {"type": "succeeded", "message": {"content": []}}
            lines.append(json.dumps({"custom_id": f"request-{number}", "result": result}))
        return "\n".join(lines) + "\n"

    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        match = _PATH.match(handler.path.split("?")[0])
        batch_id = match["id"] if match else ""
        if match is None or batch_id not in self.batches:
            self._send(handler, 404, {"type": "error", "error": {"type": "not_found_error"}})
            return
        tail = match["tail"]
        if method == "POST" and tail == "/cancel":
            self.batches[batch_id].cancelled_at = time.monotonic()
            self._send(handler, 200, self.body(batch_id))
        elif method == "GET" and tail == "/results":
            self._send(handler, 200, self.results(batch_id), "application/x-jsonlines")
        elif method == "GET" and tail is None:
            self.polls[batch_id] += 1
            self._send(handler, 200, self.body(batch_id))
        else:
            self._send(handler, 405, {"type": "error", "error": {"type": "invalid_request"}})

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, body: Any, kind: str = "application/json"
    ) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        handler.send_response(status)
        handler.send_header("content-type", kind)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

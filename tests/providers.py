"""A fake of the Anthropic Message Batches and OpenAI Batches APIs, real HTTP on loopback.

Each batch follows a script: every GET of it answers the script's next entry (the last one
repeats), a batch body or an `Answer` (an error status, a Retry-After, a delay). Results and
files are JSONL. Every request is recorded with its time, and requests in flight are counted
per batch and in all, so tests can see pacing, backoff and exclusion.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ANTHROPIC_KEY = "sk-ant-fake-4c1d0e9b"
OPENAI_KEY = "sk-proj-fake-8f2a7c31"


@dataclass
class Answer:
    """An answer that is not a batch body: an error, a slow one."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    #: Send the body in this many writes, `pause_s` apart (as a slow network delivers it).
    pieces: int = 1
    pause_s: float = 0.0


@dataclass
class Seen:
    """One request the fake received."""

    at: float
    provider: str
    method: str
    batch: str
    path: str


def anthropic(batch_id: str, status: str = "in_progress", **counts: int) -> dict[str, Any]:
    """A Message Batch body; `cancelled=1` marks a cancel initiated."""
    cancelled = counts.pop("cancelled", 0)
    names = ("processing", "succeeded", "errored", "canceled", "expired")
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {name: counts.get(name, 0) for name in names},
        "created_at": "2026-11-29T10:00:00Z",
        "expires_at": "2100-01-01T00:00:00Z",  # far off: tests run on the real clock too
        "ended_at": "2026-11-29T11:00:00Z" if status == "ended" else None,
        "cancel_initiated_at": "2026-11-29T10:30:00Z" if cancelled else None,
        "results_url": None if status != "ended" else "RESULTS",
    }


def openai(
    batch_id: str,
    status: str = "in_progress",
    total: int = 0,
    completed: int = 0,
    failed: int = 0,
    output: str | None = None,
    errors: str | None = None,
) -> dict[str, Any]:
    """A Batch body."""
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "status": status,
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "output_file_id": output,
        "error_file_id": errors,
        "created_at": 1795000000,
        "expires_at": 4102444800,  # 2100-01-01T00:00:00Z
    }


class FakeProviders:
    """Both providers on one loopback server."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.scripts: dict[tuple[str, str], list[Any]] = {}
        self.files: dict[str, list[str]] = {}
        #: What a batch's script becomes once it is cancelled.
        self.after_cancel: dict[tuple[str, str], list[Any]] = {}
        self.seen: list[Seen] = []
        self.cancels: list[tuple[str, str]] = []
        self.in_flight = 0
        self.in_flight_max = 0
        self._per_batch: Counter[str] = Counter()
        #: The most requests one batch ever had in flight at once.
        self.batch_in_flight_max: defaultdict[str, int] = defaultdict(int)
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    def script(self, provider: str, batch_id: str, *entries: Any) -> None:
        self.scripts[(provider, batch_id)] = list(entries)

    def results(self, name: str, lines: list[Any]) -> None:
        """JSONL content: Anthropic results under the batch id, OpenAI files under the file id."""
        self.files[name] = [line if isinstance(line, str) else json.dumps(line) for line in lines]

    def polls(self, provider: str, batch_id: str) -> list[Seen]:
        return [
            s for s in self.seen if (s.provider, s.batch, s.method) == (provider, batch_id, "GET")
        ]

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/v1/messages/batches/{id}", self._anthropic_batch)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self._anthropic_cancel)
        app.router.add_get("/v1/messages/batches/{id}/results", self._anthropic_results)
        app.router.add_get("/v1/batches/{id}", self._openai_batch)
        app.router.add_post("/v1/batches/{id}/cancel", self._openai_cancel)
        app.router.add_get("/v1/files/{id}/content", self._openai_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request, provider: str, answer: Any) -> web.StreamResponse:
        batch = request.match_info["id"]
        self.seen.append(Seen(time.monotonic(), provider, request.method, batch, request.path))
        self.in_flight += 1
        self._per_batch[batch] += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        self.batch_in_flight_max[batch] = max(
            self.batch_in_flight_max[batch], self._per_batch[batch]
        )
        try:
            if not _authorised(request, provider):
                return web.json_response({"error": {"message": "invalid x-api-key"}}, status=401)
            if not isinstance(answer, Answer):
                answer = Answer(body=answer)
            await asyncio.sleep(self.delay_s + answer.delay_s)
            if answer.body is None and answer.status == 404:
                answer.body = {"error": {"type": "not_found_error", "message": "no such batch"}}
            if answer.pieces > 1:  # as JSON, a list too
                return await _in_pieces(request, answer)
            if isinstance(answer.body, list):
                text = "".join(line + "\n" for line in answer.body)
                return web.Response(
                    text=text, status=answer.status, content_type="application/x-ndjson"
                )
            return web.json_response(answer.body, status=answer.status, headers=answer.headers)
        finally:
            self.in_flight -= 1
            self._per_batch[batch] -= 1

    def _next(self, provider: str, batch: str, request: web.Request) -> Any:
        script = self.scripts.get((provider, batch))
        if not script:
            return Answer(404)
        entry = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(entry, dict) and entry.get("results_url") == "RESULTS":
            url = request.url.with_path(f"/v1/messages/batches/{batch}/results")
            entry = {**entry, "results_url": str(url.with_query(None))}
        return entry

    async def _anthropic_batch(self, request: web.Request) -> web.StreamResponse:
        entry = self._next("anthropic", request.match_info["id"], request)
        return await self._serve(request, "anthropic", entry)

    async def _openai_batch(self, request: web.Request) -> web.StreamResponse:
        entry = self._next("openai", request.match_info["id"], request)
        return await self._serve(request, "openai", entry)

    def _cancel(self, provider: str, batch: str) -> Any:
        self.cancels.append((provider, batch))
        if (provider, batch) in self.after_cancel:
            self.scripts[(provider, batch)] = self.after_cancel.pop((provider, batch))
        script = self.scripts.get((provider, batch))
        return script[0] if script else Answer(404)

    async def _anthropic_cancel(self, request: web.Request) -> web.StreamResponse:
        entry = self._cancel("anthropic", request.match_info["id"])
        return await self._serve(request, "anthropic", entry)

    async def _openai_cancel(self, request: web.Request) -> web.StreamResponse:
        entry = self._cancel("openai", request.match_info["id"])
        return await self._serve(request, "openai", entry)

    async def _anthropic_results(self, request: web.Request) -> web.StreamResponse:
        lines = self.files.get(request.match_info["id"])
        return await self._serve(request, "anthropic", Answer(404) if lines is None else lines)

    async def _openai_file(self, request: web.Request) -> web.StreamResponse:
        lines = self.files.get(request.match_info["id"])
        return await self._serve(request, "openai", Answer(404) if lines is None else lines)


def _authorised(request: web.Request, provider: str) -> bool:
    if provider == "anthropic":
        return (
            request.headers.get("x-api-key") == ANTHROPIC_KEY
            and request.headers.get("anthropic-version") == "2023-06-01"
        )
    return request.headers.get("Authorization") == f"Bearer {OPENAI_KEY}"


async def _in_pieces(request: web.Request, answer: Answer) -> web.StreamResponse:
    """The answer's JSON body in `answer.pieces` writes, `answer.pause_s` apart."""
    body = json.dumps(answer.body).encode()
    response = web.StreamResponse(status=answer.status, headers=answer.headers)
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    size = -(-len(body) // answer.pieces)
    for start in range(0, len(body), size):
        await response.write(body[start : start + size])
        await asyncio.sleep(answer.pause_s)
    await response.write_eof()
    return response

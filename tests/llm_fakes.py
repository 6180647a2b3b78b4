"""Fakes of OpenAI's chat completions and Anthropic's messages, real HTTP and Server-Sent Events
on loopback, for the official `openai` and `anthropic` clients to talk to.

Each provider answers from a script: every request takes the next entry (the last one
repeats), a `Reply` (streamed when the request says `stream`, as the provider streams it:
OpenAI's role chunk, content chunks, the finish chunk and, only when the request asked with
`stream_options.include_usage`, the usage chunk; Anthropic's message_start, blocks, ping,
message_delta with the output count, message_stop) or a `Refusal` (an HTTP error with the
provider's error body and headers, e.g. a 429 with `retry-after-ms`). A reply may fail in
the middle of its stream as the provider does (OpenAI: a data line holding an `error`;
Anthropic: an `error` event). Every request is kept (`seen`). The server runs on a thread of
its own, so that synchronous clients can block on it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

OPENAI_KEY = "sk-proj-fake-llm-5e1b"
ANTHROPIC_KEY = "sk-ant-fake-llm-7d20"


@dataclass
class Reply:
    """A successful answer."""

    model: str
    pieces: list[str] = field(default_factory=lambda: ["Hel", "lo", "!"])
    finish: str = "stop"
    input_tokens: int = 10
    output_tokens: int = 3
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    #: How long the stream waits between its start (the role chunk) and its first content.
    first_delay_s: float = 0.0
    #: Fail the stream after this many content pieces (the provider's mid-stream error).
    fail_after: int | None = None


@dataclass
class Refusal:
    """An HTTP error, as the provider answers it."""

    status: int
    code: str
    message: str = "refused"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request the fake received."""

    provider: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class FakeLLM:
    """Both providers on one loopback server, on a thread of its own."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply | Refusal]] = {"openai": [], "anthropic": []}
        self.seen: list[Seen] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        self.url = f"http://127.0.0.1:{port}"

    def script(self, provider: str, *entries: Reply | Refusal) -> None:
        self.scripts[provider] = list(entries)

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _next(self, provider: str, request: web.Request) -> tuple[Any, dict[str, Any]]:
        body = await request.json()
        self.seen.append(Seen(provider, request.path, body, dict(request.headers)))
        script = self.scripts[provider]
        entry = script.pop(0) if len(script) > 1 else script[0]
        return entry, body

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {OPENAI_KEY}":
            return _openai_error(Refusal(401, "invalid_api_key", "Incorrect API key provided"))
        entry, body = await self._next("openai", request)
        if isinstance(entry, Refusal):
            return _openai_error(entry)
        if not body.get("stream"):
            return web.json_response(openai_completion(entry))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await _stream(request, openai_chunks(entry, usage), entry.first_delay_s)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        keys = (request.headers.get("x-api-key"), request.headers.get("Authorization"))
        if not request.headers.get("anthropic-version") or (
            keys[0] != ANTHROPIC_KEY and keys[1] != f"Bearer {ANTHROPIC_KEY}"
        ):
            return _anthropic_error(Refusal(401, "authentication_error", "invalid x-api-key"))
        entry, body = await self._next("anthropic", request)
        if isinstance(entry, Refusal):
            return _anthropic_error(entry)
        if not body.get("stream"):
            return web.json_response(anthropic_message(entry))
        return await _stream(request, anthropic_events(entry), entry.first_delay_s)


#: Marks where a stream waits for its first content.
PAUSE = b""


async def _stream(request: web.Request, events: list[bytes], delay_s: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    pause = events.index(PAUSE)
    await response.write(b"".join(events[:pause]))
    await asyncio.sleep(delay_s)
    await response.write(b"".join(events[pause + 1 :]))
    await response.write_eof()
    return response


def _openai_usage(reply: Reply) -> dict[str, Any]:
    prompt = reply.input_tokens + reply.cache_read_tokens + reply.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": reply.output_tokens,
        "total_tokens": prompt + reply.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": reply.cache_read_tokens,
            "cache_write_tokens": reply.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_completion(reply: Reply) -> dict[str, Any]:
    """A `chat.completion` body."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(reply.pieces), "refusal": None},
                "logprobs": None,
                "finish_reason": reply.finish,
            }
        ],
        "usage": _openai_usage(reply),
        "system_fingerprint": "fp_fake",
    }


def openai_chunks(reply: Reply, include_usage: bool) -> list[bytes]:
    """The SSE body of a streamed chat completion, PAUSE where the first content waits."""
    created = int(time.time())
    answer = f"chatcmpl-{uuid.uuid4().hex}"

    def chunk(choices: list[Any], **extra: Any) -> bytes:
        body = {
            "id": answer,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
            **({"usage": None} if include_usage else {}),
            **extra,
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    def delta(content: dict[str, Any], finish: str | None = None) -> list[Any]:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]

    events = [chunk(delta({"role": "assistant", "content": "", "refusal": None})), PAUSE]
    for number, piece in enumerate(reply.pieces):
        if reply.fail_after == number:
            error = {"message": "The server had an error", "type": "server_error", "code": None}
            return [*events, b"data: " + json.dumps({"error": error}).encode() + b"\n\n"]
        events.append(chunk(delta({"content": piece})))
    events.append(chunk(delta({}, reply.finish)))
    if include_usage:
        events.append(chunk([], usage=_openai_usage(reply)))
    return [*events, b"data: [DONE]\n\n"]


def _openai_error(refusal: Refusal) -> web.Response:
    body = {
        "error": {
            "message": refusal.message,
            "type": "requests" if refusal.status == 429 else "invalid_request_error",
            "param": None,
            "code": refusal.code,
        }
    }
    return web.json_response(body, status=refusal.status, headers=refusal.headers)


def _anthropic_usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": reply.input_tokens,
        "cache_creation_input_tokens": reply.cache_write_tokens,
        "cache_read_input_tokens": reply.cache_read_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def anthropic_message(reply: Reply) -> dict[str, Any]:
    """A `message` body."""
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [{"type": "text", "text": "".join(reply.pieces)}],
        "stop_reason": reply.finish,
        "stop_sequence": None,
        "usage": _anthropic_usage(reply, reply.output_tokens),
    }


def anthropic_events(reply: Reply) -> list[bytes]:
    """The SSE body of a streamed message, PAUSE where the first content waits."""
    start = {**anthropic_message(reply), "content": [], "stop_reason": None}
    start["usage"] = _anthropic_usage(reply, 1)
    events = [
        _sse({"type": "message_start", "message": start}, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
        PAUSE,
    ]
    for number, piece in enumerate(reply.pieces):
        if reply.fail_after == number:
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            return [*events, _sse(error, "error")]
        text = {"type": "text_delta", "text": piece}
        events.append(
            _sse({"type": "content_block_delta", "index": 0, "delta": text}, "content_block_delta")
        )
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": reply.finish, "stop_sequence": None},
        "usage": {"output_tokens": reply.output_tokens},
    }
    return [
        *events,
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(delta, "message_delta"),
        _sse({"type": "message_stop"}, "message_stop"),
    ]


def _anthropic_error(refusal: Refusal) -> web.Response:
    body = {"type": "error", "error": {"type": refusal.code, "message": refusal.message}}
    return web.json_response(body, status=refusal.status, headers=refusal.headers)


def assert_first_calls_ttft(ttft_ns: int | None, started: float, first_done: float) -> None:
    """The run's time to first token is its first call's: past that call's 0.2 s wait for its
    first content (its role chunk or message_start came at once), and short of any the second
    call (1 s more) could give: `started` is (monotonic) just after the run's job was created,
    `first_done` just after the first call's answer was read.
    """
    assert ttft_ns is not None
    assert ttft_ns >= 200_000_000
    assert ttft_ns < (first_done - started + 1.0) * 1e9


def sums_of(replies: tuple[Reply, ...]) -> dict[str, int]:
    """What the fake reported for `replies`, added up as jobpulse shows usage."""
    return {
        "calls": len(replies),
        "input_tokens": sum(r.input_tokens for r in replies),
        "output_tokens": sum(r.output_tokens for r in replies),
        "cache_read_tokens": sum(r.cache_read_tokens for r in replies),
        "cache_write_tokens": sum(r.cache_write_tokens for r in replies),
    }


def stats_usage(url: str, secret: str) -> dict[str, Any]:
    """/v1/stats' `usage` of the last 24 hours, as the key sees it."""
    answer = httpx.get(f"{url}/v1/stats", headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    answer.raise_for_status()
    usage: dict[str, Any] = answer.json()["usage"]
    return usage

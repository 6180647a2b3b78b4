"""Reading Anthropic's messages (`client.messages.create`, `.stream`, `.parse`) as the official
`anthropic` package returns them.

A streamed message tells its input and cache counts in `message_start` and its output count
(a running total) in each `message_delta`, which may restate the others; the last word wins.
The first content token is the first block delta that carries text, a tool's input, thinking
or a citation (not a signature), or the start of a tool call.
"""

from __future__ import annotations

from typing import Any

from anthropic import AsyncStream, Stream

from jobpulse.llm.ledger import Call
from jobpulse.llm.observation import Reader, See

#: The endpoint read.
PATHS = frozenset({"/v1/messages"})
#: Block deltas that carry output, and the field that holds it.
CONTENT_DELTAS = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "citations_delta": "citation",
}
#: Blocks whose start is output already (a tool's name).
TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


def read_usage(call: Call, usage: Any) -> None:
    """A `Usage` or `MessageDeltaUsage` into the call's counts (fields it leaves out kept)."""
    if usage.input_tokens is not None:
        call.input_tokens = usage.input_tokens
    if usage.output_tokens is not None:
        call.output_tokens = usage.output_tokens
    if usage.cache_read_input_tokens is not None:
        call.cache_read_tokens = usage.cache_read_input_tokens
    if usage.cache_creation_input_tokens is not None:
        call.cache_write_tokens = usage.cache_creation_input_tokens


def _is_content_delta(delta: Any) -> bool:
    field = CONTENT_DELTAS.get(delta.type)
    return field is not None and bool(getattr(delta, field, None))


def _is_content_block(block: Any) -> bool:
    return block.type in TOOL_BLOCKS or bool(getattr(block, "text", None))


def see_event(call: Call, event: Any) -> bool:
    """One `RawMessageStreamEvent`."""
    kind = event.type
    if kind == "content_block_delta":
        if call.first_ns is None and _is_content_delta(event.delta):
            call.content()
    elif kind == "message_delta":
        if event.delta.stop_reason is not None:
            call.finish_reason = event.delta.stop_reason
        read_usage(call, event.usage)
    elif kind == "message_start":
        read_usage(call, event.message.usage)
        call.call_id = event.message.id
        if call.model is None:
            call.model = event.message.model
    elif (
        kind == "content_block_start"
        and call.first_ns is None
        and _is_content_block(event.content_block)
    ):
        call.content()
    return True


def see_message(call: Call, message: Any) -> None:
    """A whole `Message`."""
    if any(_is_content_block(block) for block in message.content):
        call.content()
    call.finish_reason = message.stop_reason
    read_usage(call, message.usage)
    call.call_id = message.id
    if call.model is None:
        call.model = message.model


def prepare(kwargs: dict[str, Any]) -> tuple[str | None, dict[str, Any], See]:
    """The model asked for; the request as it is."""
    body = kwargs.get("body")
    model = body.get("model") if isinstance(body, dict) else None
    return (model if isinstance(model, str) else None), kwargs, see_event


READER = Reader(
    name="anthropic",
    paths=PATHS,
    streams=(Stream,),
    async_streams=(AsyncStream,),
    see_item=see_event,
    see_answer=see_message,
    prepare=prepare,
)


def resources(client: Any) -> list[Any]:
    """The resources of an `Anthropic` or `AsyncAnthropic` client whose calls are read."""
    return [client.messages]

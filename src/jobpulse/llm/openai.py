"""Reading OpenAI's chat completions (`client.chat.completions.create`, `.parse`, `.stream`)
as the official `openai` package returns them.

Tokens: OpenAI counts cached prompt tokens inside `prompt_tokens`; jobpulse's `input_tokens`
are the prompt tokens read neither from the cache nor written to it, as Anthropic counts them,
so that the four counts add up to what was sent and each is priced once. A streamed call
reports its usage only in a last chunk the caller must ask for
(`stream_options.include_usage`): when the caller did not, jobpulse asks for it and keeps that
chunk (empty `choices`) to itself, so the caller's stream yields what it would have.
"""

from __future__ import annotations

from typing import Any

from openai import AsyncStream, Stream

from jobpulse.llm.ledger import Call
from jobpulse.llm.observation import Reader, See

#: The endpoint read.
PATHS = frozenset({"/chat/completions"})


def read_usage(call: Call, usage: Any) -> None:
    """A `CompletionUsage` into the call's counts."""
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    written = (getattr(details, "cache_write_tokens", None) or 0) if details is not None else 0
    call.input_tokens = max(usage.prompt_tokens - cached - written, 0)
    call.output_tokens = usage.completion_tokens
    call.cache_read_tokens = cached
    call.cache_write_tokens = written


def _is_content(delta: Any) -> bool:
    """Whether a delta carries output (text, a refusal, a tool call, audio), not only a role."""
    return bool(
        delta.content or delta.refusal or delta.tool_calls or delta.function_call or delta.audio
    )


def see_chunk(call: Call, chunk: Any) -> bool:
    """One `ChatCompletionChunk`."""
    choices = chunk.choices
    for choice in choices:
        if call.first_ns is None and _is_content(choice.delta):
            call.content()
        if choice.finish_reason is not None:
            call.finish_reason = choice.finish_reason
    usage = chunk.usage
    if usage is not None:
        read_usage(call, usage)
        call.call_id = chunk.id
    if call.model is None:
        call.model = chunk.model
    return True


def see_chunk_withholding(call: Call, chunk: Any) -> bool:
    """One chunk of a stream whose usage chunk jobpulse asked for: that one (no choices, a
    usage) is withheld.
    """
    see_chunk(call, chunk)
    return chunk.usage is None or bool(chunk.choices)


def see_completion(call: Call, completion: Any) -> None:
    """A whole `ChatCompletion`."""
    if any(_has_output(choice.message) for choice in completion.choices):
        call.content()
    for choice in completion.choices:
        if choice.finish_reason is not None:
            call.finish_reason = choice.finish_reason
    if completion.usage is not None:
        read_usage(call, completion.usage)
    call.call_id = completion.id
    if call.model is None:
        call.model = completion.model


def _has_output(message: Any) -> bool:
    return bool(message.content or message.refusal or message.tool_calls or message.audio)


def prepare(kwargs: dict[str, Any]) -> tuple[str | None, dict[str, Any], See]:
    """The model asked for; the request with its usage chunk asked for, when it streams and
    the caller said nothing of it.
    """
    body = kwargs.get("body")
    if not isinstance(body, dict):
        return None, kwargs, see_chunk
    model = body.get("model")
    model = model if isinstance(model, str) else None
    options = body.get("stream_options")
    if not kwargs.get("stream") or (isinstance(options, dict) and "include_usage" in options):
        return model, kwargs, see_chunk
    asked = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return model, {**kwargs, "body": {**body, "stream_options": asked}}, see_chunk_withholding


READER = Reader(
    name="openai",
    paths=PATHS,
    streams=(Stream,),
    async_streams=(AsyncStream,),
    see_item=see_chunk,
    see_answer=see_completion,
    prepare=prepare,
)


def resources(client: Any) -> list[Any]:
    """The resources of an `OpenAI` or `AsyncOpenAI` client whose calls are read."""
    return [client.chat.completions]

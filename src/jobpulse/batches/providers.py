"""The providers' batch APIs over HTTP (aiohttp, the project's client): a batch's state, a
cancel, and an ended batch's per-request outcomes read as a stream of JSONL lines.

Anthropic Message Batches: `x-api-key` and `anthropic-version` headers,
`GET /v1/messages/batches/{id}`, `POST …/cancel`, results at `results_url` (followed only on
the configured origin, so the key goes nowhere else). OpenAI Batches: `Authorization: Bearer`,
`GET /v1/batches/{id}`, `POST …/cancel`, files at `GET /v1/files/{id}/content`.

Keys never leave this module: they are sent as headers and cut out of any error text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from jobpulse.batches.answers import READERS, Tally, UnexpectedAnswerError
from jobpulse.batches.rules import BatchRef, Provider, Snapshot, storable
from jobpulse.config import Settings

ANTHROPIC_VERSION = "2023-06-01"
#: The longest results line read (one request's full answer); a longer one is skipped and
#: counted `unreadable`.
LINE_MAX_BYTES = 16 * 1024 * 1024
#: The most of a batch's answer read (a batch is a few hundred bytes).
ANSWER_MAX_BYTES = 1024 * 1024
#: The most of an error answer read to describe it.
ERROR_READ_BYTES = 16 * 1024


class ProviderError(Exception):
    """A provider request that got no usable answer."""

    def __init__(self, message: str, status: int | None = None, retry_after: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def throttled(self) -> bool:
        """Rate limited or failing (429, 5xx): the provider's requests should back off."""
        return self.status is not None and (self.status == 429 or self.status >= 500)

    @property
    def not_found(self) -> bool:
        return self.status == 404


@dataclass(frozen=True, slots=True)
class _Api:
    """One provider's base URL and credentials."""

    provider: Provider
    base: URL
    key: str | None
    #: The key's header name and how its value is written.
    key_header: str
    key_value: Callable[[str], str]
    extra_headers: tuple[tuple[str, str], ...]
    #: The path of a batch, under the base URL.
    batches: str

    def headers(self) -> dict[str, str]:
        if self.key is None:
            name = f"{self.provider.value.upper()}_API_KEY"
            raise ProviderError(f"{name} is not set: cannot poll {self.provider} batches")
        return {self.key_header: self.key_value(self.key), **dict(self.extra_headers)}

    def batch(self, batch_id: str, *rest: str) -> URL:
        path = "/".join((self.batches, quote(batch_id, safe=""), *rest))
        return self.base.join(URL(path))

    def redact(self, text: str) -> str:
        return text.replace(self.key, "[redacted]") if self.key else text


def _apis(settings: Settings) -> dict[Provider, _Api]:
    def secret(value: Any) -> str | None:
        return None if value is None else str(value.get_secret_value()) or None

    return {
        Provider.ANTHROPIC: _Api(
            Provider.ANTHROPIC,
            URL(settings.anthropic_base_url.rstrip("/") + "/"),
            secret(settings.anthropic_api_key),
            "x-api-key",
            str,
            (("anthropic-version", ANTHROPIC_VERSION),),
            "v1/messages/batches",
        ),
        Provider.OPENAI: _Api(
            Provider.OPENAI,
            URL(settings.openai_base_url.rstrip("/") + "/"),
            secret(settings.openai_api_key),
            "Authorization",
            "Bearer {}".format,
            (),
            "v1/batches",
        ),
    }


class ProviderClient:
    """Talks to the providers' batch APIs; one pooled session for all of them."""

    def __init__(self, settings: Settings) -> None:
        self._apis = _apis(settings)
        self._timeout_s = settings.batch_timeout_s
        self._connections = settings.batch_poll_concurrency
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the loop that uses it
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, ref: BatchRef) -> Snapshot:
        """The batch as its provider describes it now."""
        api = self._apis[ref.provider]
        body = await self._json(api, "GET", api.batch(ref.batch_id))
        if not isinstance(body, Mapping):
            raise ProviderError(f"unexpected answer for batch {ref.batch_id}: not an object")
        try:
            return READERS[ref.provider](body)
        # The readers check every field they use; whatever else a strange answer could still
        # raise is the same news: not a batch.
        except (UnexpectedAnswerError, TypeError, ValueError, AttributeError, KeyError) as exc:
            why = storable(f"unexpected answer for batch {ref.batch_id}: {exc}", 300)
            raise ProviderError(api.redact(why)) from None

    async def cancel(self, ref: BatchRef) -> None:
        """Ask the provider to cancel the batch (an ended batch answers 4xx: nothing to do)."""
        api = self._apis[ref.provider]
        try:
            await self._json(api, "POST", api.batch(ref.batch_id, "cancel"))
        except ProviderError as exc:
            if exc.status is None or exc.throttled:
                raise

    async def tally(self, ref: BatchRef, snapshot: Snapshot, within_s: float) -> dict[str, Any]:
        """The summary of an ended batch's per-request outcomes, read line by line; what was
        read by `within_s` seconds if that is not all (marked partial).
        """
        api = self._apis[ref.provider]
        tally = Tally()
        add = tally.add_anthropic if ref.provider == Provider.ANTHROPIC else tally.add_openai
        try:
            async with asyncio.timeout(within_s):
                for url in self._result_urls(api, ref, snapshot):
                    async for line in self._lines(api, url):
                        if line is None:
                            tally.add("unreadable")
                            continue
                        try:
                            add(orjson.loads(line))
                        except orjson.JSONDecodeError:
                            tally.add("unreadable")
        except TimeoutError:
            tally.partial = True
        return tally.summary()

    def _result_urls(self, api: _Api, ref: BatchRef, snapshot: Snapshot) -> list[URL]:
        if ref.provider == Provider.ANTHROPIC:
            given = snapshot.files.get("results_url")
            found = URL(given) if given else None
            if found is None or found.origin() != api.base.origin():
                found = api.batch(ref.batch_id, "results")
            return [found]
        files = (snapshot.files.get(name) for name in ("output_file_id", "error_file_id"))
        return [
            api.base.join(URL(f"v1/files/{quote(name, safe='')}/content")) for name in files if name
        ]

    async def _json(self, api: _Api, method: str, url: URL) -> Any:
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                self._open().request(
                    method, url, headers=api.headers(), allow_redirects=False
                ) as response,
            ):
                await _check(api, response)
                body = await _read_up_to(response, ANSWER_MAX_BYTES)
                if len(body) > ANSWER_MAX_BYTES:
                    raise ProviderError(f"{api.provider} answered more than 1 MiB for a batch")
                return orjson.loads(body)
        except TimeoutError:
            raise ProviderError(f"no answer within {self._timeout_s:g}s") from None
        except (aiohttp.ClientError, OSError, orjson.JSONDecodeError) as exc:
            raise ProviderError(api.redact(f"{type(exc).__name__}: {exc}")[:300]) from None

    async def _lines(self, api: _Api, url: URL) -> AsyncIterator[bytes | None]:
        """The lines of a JSONL answer, as they arrive; None for a line too long to read."""
        try:
            async with self._open().get(
                url, headers=api.headers(), allow_redirects=False
            ) as response:
                await _check(api, response)
                buffer = bytearray()
                skipping = False
                async for chunk in response.content.iter_chunked(64 * 1024):
                    buffer += chunk
                    while (end := buffer.find(b"\n")) >= 0:
                        line = bytes(buffer[:end])
                        del buffer[: end + 1]
                        if skipping:
                            skipping = False
                        elif len(line) > LINE_MAX_BYTES:
                            yield None
                        elif line.strip():
                            yield line
                    if len(buffer) > LINE_MAX_BYTES:
                        buffer.clear()
                        if not skipping:
                            skipping = True
                            yield None
                if buffer.strip() and not skipping:
                    yield bytes(buffer)
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderError(api.redact(f"{type(exc).__name__}: {exc}")[:300]) from None


async def _check(api: _Api, response: aiohttp.ClientResponse) -> None:
    """ProviderError for an answer that is not 2xx, with the provider's own message."""
    if 200 <= response.status < 300:
        return
    text = (await _read_up_to(response, ERROR_READ_BYTES))[:ERROR_READ_BYTES].decode(
        "utf-8", "replace"
    )
    try:
        error = orjson.loads(text).get("error")
        detail = error.get("message") if isinstance(error, dict) else None
    except (orjson.JSONDecodeError, AttributeError):
        detail = None
    message = f"{api.provider} answered {response.status}"
    if isinstance(detail, str) and detail:
        message += f": {detail}"
    raise ProviderError(
        storable(api.redact(message), 300), response.status, response.headers.get("Retry-After")
    )


async def _read_up_to(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole answer, however many pieces it comes in, up to `limit` bytes and one more
    (a longer answer is not read further: the caller refuses it).
    """
    body = bytearray()
    while len(body) <= limit:
        chunk = await response.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)

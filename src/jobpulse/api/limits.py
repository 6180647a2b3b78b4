"""Refuse request bodies over a size limit before anything parses them, and bodies of API
requests without a valid key before anything waits for them."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobpulse.api.deps import ACCESS_TOKEN, TOKEN_READS_ONLY, bearer_actor
from jobpulse.api.errors import error_response
from jobpulse.errors import ForbiddenError, JobPulseError, PayloadTooLargeError, UnauthorizedError

#: Where `KeyBeforeBody` leaves the caller it authenticated: its actor and key's SHA-256.
CHECKED_KEY = "jobpulse.key"


class BodySizeLimit:
    """ASGI middleware: 413 for a body larger than `max_bytes`, declared or streamed.

    A body of declared length is counted as the app reads it; a chunked one (no length) is
    read here first, up to the limit, so that its 413 comes from here and not from a parser
    that would report it as a malformed body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" in headers:
            buffered = await self._read_whole(receive)
            if buffered is None:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, replay(buffered, receive), send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                # Raised inside the app, so its error handler answers 413.
                raise PayloadTooLargeError(self._message)
            return message

        await self.app(scope, counted, send)

    @property
    def _message(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"

    async def _read_whole(self, receive: Receive) -> list[Message] | None:
        """The messages of a body of unknown length, or None once it passes the limit."""
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {"Connection": "close"}  # the rest of the body is not read
        response = error_response(413, PayloadTooLargeError.code, self._message, headers)
        await response(scope, receive, send)


class KeyBeforeBody:
    """ASGI middleware: a request to the API (`prefix`) that comes with a body is answered
    401 at once, its body unread and its connection closed, unless its headers carry a valid
    key: a client without one cannot make the server wait for a body (one with a scoped
    token, which writes nothing, is answered 403 so). (The route checks the key again, from
    the cache this check fills.)
    """

    def __init__(self, app: ASGIApp, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            authorization, has_body = _authorization_and_body(scope["headers"])
            if has_body:
                try:
                    if _has_access_token(scope["query_string"]):
                        raise ForbiddenError(TOKEN_READS_ONLY)
                    scope[CHECKED_KEY] = await bearer_actor(scope["app"].state.keys, authorization)
                except (UnauthorizedError, ForbiddenError) as error:
                    headers = {"Connection": "close"}  # the body is not read
                    code = 401 if isinstance(error, UnauthorizedError) else 403
                    response = error_response(code, error.code, error.message, headers)
                    await response(scope, receive, send)
                    return
                except JobPulseError:
                    pass  # the database cannot be reached, say: the route answers it as usual
        await self.app(scope, receive, send)


def _authorization_and_body(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
    """The Authorization header, and whether a body follows the headers."""
    authorization = None
    has_body = False
    for name, value in headers:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            has_body = True
    return authorization, has_body


def _has_access_token(query: bytes) -> bool:
    """Whether the query string carries a scoped token (which writes nothing)."""
    if not query:
        return False
    return any(name == ACCESS_TOKEN for name, _ in parse_qsl(query.decode("latin-1")))


def replay(
    messages: list[Message], receive: Receive, failure: BaseException | None = None
) -> Receive:
    """A receive that hands out `messages` first, then raises `failure` if given (what
    receiving the next one raised), then whatever comes next.
    """
    pending = list(messages)
    failed = [failure] if failure is not None else []

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        if failed:
            raise failed.pop()
        return await receive()

    return replayed

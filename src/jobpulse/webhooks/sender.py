"""The HTTP client deliveries go through: aiohttp, chosen by measurement (see
docs/performance.md: httpx's pool serialises concurrent requests here), behind the small
`Sender` seam tests can replace.

Its resolver is the SSRF guard: every address a callback host resolves to is checked where
the connection is made, and only public ones are connected to, so nothing is sent to an
address that was not checked. Redirects are never followed, proxies from the environment
never used, and a receiver's answer is read to at most 64 KiB.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import socket
from types import TracebackType
from typing import NamedTuple, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from jobpulse.config import Settings
from jobpulse.errors import ValidationError
from jobpulse.webhooks import guard

#: The most of a receiver's answer that is read; the rest is left unread (and the
#: connection closed), so a huge or endless body costs nothing.
READ_MAX_BYTES = 64 * 1024


class SendError(Exception):
    """An attempt that got no HTTP answer: refused by the guard, unreachable, timed out."""


class Reply(NamedTuple):
    """What a receiver answered (one a delivery: a tuple, cheaper to make than a dataclass)."""

    status: int
    retry_after: str | None = None
    #: The body was longer than READ_MAX_BYTES and was cut there.
    cut: bool = False


class Sender(Protocol):
    """POSTs one webhook; raises SendError when there is no HTTP answer."""

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply: ...

    async def close(self) -> None: ...


class GuardedResolver(AbstractResolver):
    """Resolves callback hosts and keeps only the addresses a webhook may go to."""

    def __init__(self, allow_private: bool, exempt: frozenset[str] = frozenset()) -> None:
        self._allow_private = allow_private
        #: Hosts the operator chose (the proxy), which may be private.
        self._exempt = exempt

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            found = await asyncio.wait_for(guard.lookup(host, port), guard.RESOLVE_TIMEOUT_S)
        except (OSError, UnicodeError, TimeoutError) as exc:
            raise OSError(errno.EHOSTUNREACH, f"{host} does not resolve") from exc
        results: list[ResolveResult] = []
        refused: list[guard.IpAddress] = []
        for found_family, address in found:
            if family and found_family != family:
                continue
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not (self._allow_private or host in self._exempt or guard.is_public(ip)):
                refused.append(ip)
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=found_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        if not results:
            why = guard.refusal(refused[0]) if refused else "no address"
            raise OSError(errno.EACCES, f"refused: {host} resolves to {why}")
        return results

    async def close(self) -> None:
        """Nothing held."""


class AiohttpSender:
    """The delivery client: pooled, `concurrency` connections in all, the guard in its resolver."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._allow_private = settings.webhook_allow_private
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpSender:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop that will use it.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._allow_private, self._proxy_host()),
                limit=self._settings.webhook_concurrency,
                use_dns_cache=False,  # every attempt resolves and checks anew
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout_s),
                auto_decompress=False,
                trust_env=False,
                # A receiver's cookies are never sent back: kept, they would ride on every
                # later callback to its host, whichever organization's job it is about.
                cookie_jar=aiohttp.DummyCookieJar(),
                # No skip_auto_headers: it costs every request a header merge, and aiohttp
                # adds its User-Agent only where the headers name none (a delivery's do).
            )
        return self._session

    def _proxy_host(self) -> frozenset[str]:
        proxy = self._settings.webhook_proxy
        return frozenset({URL(proxy).host or ""}) if proxy else frozenset()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        refused = _literal_refusal(url, self._allow_private)
        if refused is not None:
            raise SendError(refused)
        proxy = self._settings.webhook_proxy
        if proxy is not None:  # the proxy resolves the host: check it here instead
            try:
                await guard.check(url, self._allow_private)
            except ValidationError as exc:
                raise SendError(f"refused: {exc.message}") from None
        try:
            # The session's total timeout bounds it all: resolving, connecting, sending, and
            # reading the answer.
            async with self._open().post(
                url, data=body, headers=headers, allow_redirects=False, proxy=proxy
            ) as response:
                cut = await _read_some(response)
                return Reply(response.status, response.headers.get("Retry-After"), cut)
        except TimeoutError:
            raise SendError(f"no answer within {self._settings.webhook_timeout_s:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SendError(_describe(exc)) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@functools.lru_cache(maxsize=4096)
def _literal_refusal(url: str, allow_private: bool) -> str | None:
    """Why a URL naming an IP address is refused, if it is (a pure function of the URL, so
    each URL is looked at once). IP literals never reach the resolver: they are checked here,
    in every spelling a socket takes (`127.1`, `2130706433`, `0x7f.1` are 127.0.0.1).
    """
    host = (URL(url).host or "").strip("[]").split("%", 1)[0]
    try:
        address: guard.IpAddress = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, UnicodeError):
            return None  # a name: the resolver checks what it resolves to
        if allow_private or guard.is_public(address):
            return f"write the address {host!r} as {address}"
    if not allow_private and not guard.is_public(address):
        return f"refused: {guard.refusal(address)}"
    return None


async def _read_some(response: aiohttp.ClientResponse) -> bool:
    """Read the answer up to READ_MAX_BYTES; whether there was more (then the connection is
    closed rather than drained).
    """
    seen = 0
    while seen <= READ_MAX_BYTES:
        chunk = await response.content.read(READ_MAX_BYTES + 1 - seen)
        if not chunk:
            return False
        seen += len(chunk)
        if response.content.at_eof() and seen <= READ_MAX_BYTES:
            return False  # all of it in one read (the usual short answer)
    response.close()
    return True


def _describe(exc: BaseException) -> str:
    """A short account of a failed connection (a guard refusal says `refused:` in it)."""
    return f"{type(exc).__name__}: {exc}"[:1000]

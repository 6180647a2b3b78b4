"""Where webhooks may go: http(s) to globally routable addresses only (no SSRF into the
network we run in).

A callback URL is checked when it is given, and every delivery checks the very addresses
it connects to, in the HTTP client's resolver (`webhooks/sender.py`), before a byte is sent:
a name re-pointed in between (DNS rebinding) gains nothing. Both resolve through `lookup`,
the one place names become addresses (and the seam tests use to play DNS).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from urllib.parse import urlsplit

from jobpulse.errors import ValidationError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: A name that takes longer than this to resolve is refused rather than waited for.
RESOLVE_TIMEOUT_S = 5.0
#: Cloud metadata services that are not already link-local.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)
#: IPv6 prefixes that carry an IPv4 address in their last 32 bits: NAT64 (well-known and
#: local-use), IPv4-compatible (`::a.b.c.d`) and IPv4-translated (`::ffff:0:a.b.c.d`).
_IPV4_IN_LAST_32_BITS = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::/96"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
)
#: The deprecated site-local range (RFC 3879), which Python still counts as global.
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, translated, compatible, 6to4,
    Teredo, NAT64).
    """
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in _IPV4_IN_LAST_32_BITS):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: IpAddress) -> bool:
    """Whether a webhook may be sent to `address`: a globally routable unicast address that
    stands for no non-public IPv4 address and is no cloud metadata service.
    """
    if address in METADATA_ADDRESSES or not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _SITE_LOCAL:
            return False
        return all(is_public(inner) for inner in _embedded_ipv4(address))
    return True


@functools.lru_cache(maxsize=4096)
def split(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL; ValidationError for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        parts, port = None, 0
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("callback_url must be an absolute http(s) URL")
    return parts.hostname, port


async def lookup(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    """(family, address) for every address `host` resolves to, numeric spellings included
    (`127.1`, `2130706433`, `0x7f.1` are 127.0.0.1 here, as they are to a socket).
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, str(sockaddr[0])) for family, _type, _proto, _name, sockaddr in infos]


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address `host` resolves to."""
    try:
        found = await asyncio.wait_for(lookup(host, port), RESOLVE_TIMEOUT_S)
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise ValidationError(f"callback host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(address.split("%", 1)[0]) for _family, address in found]


def refusal(address: IpAddress) -> str:
    """Why a webhook is not sent to `address`."""
    return (
        f"{address} is not a public address (loopback, private, link-local, shared, "
        "metadata or reserved); set JOBPULSE_WEBHOOK_ALLOW_PRIVATE=true to allow it"
    )


async def check(url: str, allow_private: bool) -> None:
    """Raise ValidationError unless `url` is http(s) and resolves only to public addresses."""
    host, port = split(url)
    if allow_private:
        return
    for address in await resolve(host, port):
        if not is_public(address):
            raise ValidationError(f"callback_url resolves to {refusal(address)}")

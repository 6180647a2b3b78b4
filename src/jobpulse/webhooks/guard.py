"""Where webhooks may go: http(s) to public addresses only (no SSRF into the network we run in).

Checked when a callback URL is given and again before each delivery, against what the name
resolves to then (a name may be re-pointed between the two).
"""

from __future__ import annotations

import asyncio
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


def is_public(address: IpAddress) -> bool:
    """Whether a webhook may be sent to `address`."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in METADATA_ADDRESSES
    )


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


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address `host` resolves to."""
    loop = asyncio.get_running_loop()
    lookup = loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    try:
        infos = await asyncio.wait_for(lookup, RESOLVE_TIMEOUT_S)
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise ValidationError(f"callback host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def check(url: str, allow_private: bool) -> None:
    """Raise ValidationError unless `url` is http(s) and resolves only to public addresses."""
    host, port = split(url)
    if allow_private:
        return
    for address in await resolve(host, port):
        if not is_public(address):
            raise ValidationError(
                f"callback_url resolves to {address}, a loopback, private, link-local or "
                "metadata address; set JOBPULSE_WEBHOOK_ALLOW_PRIVATE=true to allow it"
            )

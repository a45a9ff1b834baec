"""SSRF guard: which addresses an outbound request may connect to (docs/design.md section 8)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationBlocked(Exception):
    """The destination resolves only to addresses outbound requests may not reach."""


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (`APPS_API_OUTBOUND_ALLOW_NETWORKS`); a bare address is a /32 or /128."""
    items = (item.strip() for item in value.split(","))
    return tuple(ipaddress.ip_network(item, strict=False) for item in items if item)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def refusal_reason(address: IPAddress, allow: Iterable[IPNetwork] = ()) -> str | None:
    """Why `address` may not be reached, or None when it may."""
    address = _unmapped(address)
    if any(address.version == network.version and address in network for network in allow):
        return None
    for label, flagged in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flagged:
            return f"{label} address {address}"
    if not address.is_global:
        return f"non-public address {address}"
    return None


async def resolve_checked(host: str, port: int, allow: Iterable[IPNetwork] = ()) -> str:
    """Resolve `host` and return the first address the guard allows; DestinationBlocked otherwise."""
    allow = tuple(allow)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
        candidates: list[IPAddress] = [address]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise OSError(f"cannot resolve {host}: {error.strerror}") from error
        candidates = []
        for info in infos:
            candidate = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if candidate not in candidates:
                candidates.append(candidate)
    reasons = []
    for candidate in candidates:
        reason = refusal_reason(candidate, allow)
        if reason is None:
            return str(candidate)
        reasons.append(reason)
    raise DestinationBlocked(
        f"Refused by the SSRF guard: {host} resolves to {', '.join(reasons) or 'no address'} "
        "(see APPS_API_OUTBOUND_ALLOW_NETWORKS)."
    )

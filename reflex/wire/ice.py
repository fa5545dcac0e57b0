"""Which local addresses WebRTC offers as ICE host candidates.

aioice gathers a candidate on every interface except loopback, and aiortc adds Google's public
STUN server unless told otherwise. For a server and robot on one host (and for tests, which
must only use 127.0.0.1) we pin the host candidates to chosen addresses and use no STUN server.
The pin is process-wide because aioice looks the address list up through a module function.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

_ORIGINAL: Any = None
_PINNED: list[str] | None = None


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_ice_addresses(url_or_host: str) -> list[str] | None:
    """Loopback peers get a 127.0.0.1-only candidate; anything else gathers on all interfaces."""
    host = urlsplit(url_or_host).hostname if "//" in url_or_host else url_or_host
    return ["127.0.0.1"] if is_loopback_host(host) else None


def pin_host_addresses(addresses: list[str] | None) -> None:
    """Offer only ``addresses`` as host candidates (``None``: aioice's default, all interfaces)."""
    global _ORIGINAL, _PINNED
    import aioice.ice

    if _ORIGINAL is None:
        _ORIGINAL = aioice.ice.get_host_addresses

    def pinned(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if _PINNED is None:
            return list(_ORIGINAL(use_ipv4, use_ipv6))
        return [a for a in _PINNED if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    _PINNED = list(addresses) if addresses is not None else None
    aioice.ice.get_host_addresses = pinned


def rtc_configuration(ice_servers: list[str]) -> Any:
    """An ``RTCConfiguration`` with exactly these STUN/TURN URLs (never aiortc's default)."""
    from aiortc import RTCConfiguration, RTCIceServer

    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])

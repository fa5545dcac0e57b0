"""Settings of one ``reflex serve`` process (the CLI flags, as a value)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PORT = 8000
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 3840 * 2160  # 4K UHD: 25 MB decoded; policies take far smaller inputs


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 picks a free port (printed on start)
    api_key: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_concurrent: int = 4
    resize_images: bool = False  # resize images of another size instead of answering 422
    webrtc: bool = True
    ice_addresses: list[str] | None = None  # None: 127.0.0.1 when host is loopback, else all
    ice_servers: list[str] = field(default_factory=list)
    max_peers: int = 8
    max_peers_per_client: int = 2  # one client address cannot take every peer slot
    peer_connect_timeout_s: float = 10.0  # an answered offer whose peer never connects frees its slot
    max_sockets_per_client: int = 4  # openpi WebSocket connections from one client address
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # checked from the header before decoding
    access_log: bool = False

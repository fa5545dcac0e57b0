"""The two halves of a remote target.

A :class:`Transport` moves bytes to a policy server and back (HTTP, WebSocket, WebRTC data
channel); a :class:`WireProtocol` says what the bytes mean (reflex serve's ``/act`` message,
openpi's msgpack-numpy dicts, a mapped JSON server). :class:`RemoteTarget` joins one of each and
owns everything they have in common: readiness, retries, timing and chunk validation. A new
transport or protocol is one new module implementing one of these.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from reflex.ports import Observation, TargetInfo

Buffer = bytes | bytearray | memoryview


@dataclass
class Reply:
    """One answer from the server, as the transport received it.

    ``status`` is HTTP-like: 200 for a normal answer (a WebSocket binary frame, an HTTP 200);
    an error text frame or an HTTP error carries its status. A transport that already decoded
    the body (the WebRTC envelope) puts the value in ``payload``.
    """

    status: int
    content_type: str
    body: Buffer = b""
    payload: Any = None

    def decoded(self) -> Any:
        """The body as a value: msgpack, JSON, or text (never raises: an error body is shown)."""
        if self.payload is not None:
            return self.payload
        from reflex.wire.msgpack_numpy import WireFormatError, unpackb

        try:
            if "msgpack" in self.content_type:
                return unpackb(self.body)
            if "json" in self.content_type:
                return json.loads(bytes(self.body)) if self.body else None
        except (WireFormatError, ValueError):
            pass
        return bytes(self.body[:2000]).decode(errors="replace")


@dataclass
class Request:
    """One encoded observation: buffers sent back to back, their content type, image bytes."""

    parts: Sequence[Buffer]
    content_type: str
    image_bytes: int | None = None


class Transport(Protocol):
    name: str  # names the target kind in messages and results: http, websocket, webrtc
    url: str

    def open(self) -> Reply | None:
        """Connect (again); the server's greeting (health answer, metadata frame) if it has one.

        Connection problems raise TransportFailure (retried); a refusal raises RemoteError.
        """

    def exchange(self, request: Request, timeout_s: float) -> Reply:
        """Send one request and wait for its reply, reconnecting first if the link was lost."""

    def close(self) -> None: ...


class WireProtocol(Protocol):
    name: str  # reflex, openpi, mapped-json

    def describe(self, greeting: Reply | None, transport: Transport) -> TargetInfo:
        """What the server declares, from its greeting. Raise TransportFailure while it is not ready."""

    def encode(self, obs: Observation) -> Request: ...

    def decode(self, reply: Reply, obs: Observation) -> tuple[np.ndarray, float | None]:
        """``(actions (H, A), server_ms or None)`` from a 200 reply."""

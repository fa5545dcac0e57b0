"""WebSocket transport: openpi's framing (metadata frame first, then strict request/reply turns)."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Mapping
from typing import Any

from reflex.targets.remote.ports import Reply, Request
from reflex.targets.websocket.link import HandshakeRefused, LinkClosed, WebsocketLink
from reflex.wire.remote_client import ResponseTooLarge, TransportFailure, error_from_status

MSGPACK = "application/msgpack"


class WebsocketTransport:
    name = "websocket"
    link_class: type[WebsocketLink] = WebsocketLink  # the bench swaps in websockets' sync client

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        connect_timeout_s: float,
        max_response_bytes: int,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.url = url
        self.headers = headers
        self.connect_timeout_s = connect_timeout_s
        self.max_response_bytes = max_response_bytes
        self.ssl_context = ssl_context
        self._link: WebsocketLink | None = None

    def open(self) -> Reply:
        """Connect and read the server's first frame: its metadata."""
        self.close()
        # No keepalive pings: each request is bounded by timeout_s, and pings would only kill a
        # slow but healthy inference on servers that block their event loop (openpi does).
        try:
            link = self.link_class(
                self.url, self.headers, self.connect_timeout_s, self.max_response_bytes, self.ssl_context
            )
        except HandshakeRefused as exc:
            raise error_from_status(exc.status, _json_or_text(exc.body), f"websocket upgrade at {self.url}") from exc
        except (OSError, TimeoutError) as exc:
            raise TransportFailure(f"cannot open {self.url}: {exc!r}") from exc
        try:
            first = link.recv(self.connect_timeout_s)
        except ResponseTooLarge:
            link.close()
            raise
        except (OSError, TimeoutError) as exc:
            link.close()
            raise TransportFailure(f"{self.url}: no metadata frame after connecting: {exc!r}") from exc
        self._link = link
        return _reply(first)

    def exchange(self, request: Request, timeout_s: float) -> Reply:
        if self._link is None:
            self.open()  # a reconnect: the metadata was read at connect
        link = self._link
        assert link is not None
        try:
            link.send_binary(request.parts)
            message = link.recv(timeout_s)
        except ResponseTooLarge:
            self.close()
            raise
        except (OSError, TimeoutError) as exc:
            # After a timeout the late answer would pair with the next request: start over.
            self.close()
            raise TransportFailure(f"{self.url}: {_describe(exc)}") from exc
        return _reply(message)

    def close(self) -> None:
        if self._link is not None:
            link, self._link = self._link, None
            with contextlib.suppress(Exception):  # closing a dead socket: nothing left to do
                link.close()


def _reply(message: bytes | str) -> Reply:
    """A binary frame is an answer; a text frame is an error (openpi: a traceback)."""
    if isinstance(message, bytes):
        return Reply(200, MSGPACK, message)
    body = _json_or_text(message.encode())
    if isinstance(body, Mapping):
        return Reply(_status_of(body), "application/json", message.encode())
    return Reply(500, "text/plain", message.encode())  # openpi: a traceback means a 500


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LinkClosed):
        return str(exc)
    return repr(exc)


def _json_or_text(data: bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return bytes(data).decode(errors="replace")


def _status_of(body: Mapping[str, Any]) -> int:
    err = body.get("error")
    status = err.get("status") if isinstance(err, Mapping) else None
    return int(status) if isinstance(status, int) else 500

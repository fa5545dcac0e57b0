"""One client WebSocket, driven in the calling thread through the ``websockets`` library's
Sans-I/O protocol.

The library does all of RFC 6455: the handshake, writing frames, and parsing everything the
server sends (fragments, UTF-8, pings answered, close codes, the message size cap: close 1009
and :class:`ResponseTooLarge` here). This module only moves its bytes over the socket and keeps
the time limits: reading in the caller's thread means no reader thread and no hand-off per
message (bench/transport_bench.py compares it with websockets' threaded sync client).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI, PayloadTooBig
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from reflex.wire.remote_client import ResponseTooLarge

Buf = bytes | bytearray | memoryview
RECV_PIECE = 1 << 20


class HandshakeRefused(Exception):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class LinkClosed(ConnectionError):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed (code {code}): {reason}" if code else f"connection closed: {reason}")
        self.code = code
        self.reason = reason


class WebsocketLink:
    """``send_binary`` then ``recv``; one caller at a time."""

    def __init__(
        self,
        uri: str,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        max_size: int = 1 << 26,
        ssl_context: ssl.SSLContext | None = None,
        close_timeout: float = 2.0,
    ) -> None:
        try:
            wsuri = parse_uri(uri)
        except InvalidURI as exc:
            raise ValueError(f"'{uri}': expected ws://host:port[/path] or wss://...") from exc
        self.max_size = max_size
        self.close_timeout = close_timeout  # how long close() waits for the server to end the TCP connection
        sock = socket.create_connection((wsuri.host, wsuri.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if wsuri.secure:
            context = ssl_context or ssl.create_default_context()
            try:
                sock = context.wrap_socket(sock, server_hostname=wsuri.host)
            except BaseException:
                sock.close()
                raise
        self.sock: socket.socket = sock
        self.proto = ClientProtocol(wsuri, max_size=max_size)
        self._events: list[object] = []  # parsed but not yet handed out (frames right behind the upgrade)
        try:
            self._handshake(headers or {}, time.monotonic() + timeout)
        except BaseException:
            sock.close()
            raise

    def _handshake(self, headers: dict[str, str], deadline: float) -> None:
        request = self.proto.connect()
        for name, value in headers.items():
            request.headers[name] = value
        self.proto.send_request(request)
        self._flush()
        while True:
            events = self.proto.events_received()
            for i, event in enumerate(events):
                if isinstance(event, Response):
                    self._events = list(events[i + 1 :])
                    exc = self.proto.handshake_exc
                    if isinstance(exc, InvalidStatus):
                        raise HandshakeRefused(exc.response.status_code, bytes(exc.response.body or b""))
                    if exc is not None:
                        raise ConnectionError(f"WebSocket handshake failed: {exc}") from exc
                    return
            if self.proto.handshake_exc is not None:
                exc = self.proto.handshake_exc
                if isinstance(exc, InvalidHandshake):
                    raise ConnectionError(f"WebSocket handshake failed: {exc}") from exc
            self._read(deadline)

    # -- sending ----------------------------------------------------------------------------
    def send_binary(self, parts: Buf | Sequence[Buf]) -> None:
        """One binary message; ``parts`` may be several buffers (sent back to back)."""
        if self.proto.state is not State.OPEN:
            raise LinkClosed(None, "the connection is closing")
        data = parts if isinstance(parts, (bytes, bytearray, memoryview)) else b"".join(parts)
        self.proto.send_binary(data)
        self._flush()

    def _flush(self) -> None:
        """Whatever the library wants sent: the upgrade request, pongs, close frames."""
        for data in self.proto.data_to_send():
            if data:
                self.sock.sendall(data)

    # -- receiving --------------------------------------------------------------------------
    def recv(self, timeout: float) -> bytes | str:
        """The next data message (binary -> bytes, text -> str); pings are answered meanwhile."""
        deadline = time.monotonic() + timeout
        parts: list[bytes] = []
        text = False
        while True:
            if not self._events:
                self._events = list(self.proto.events_received())
                if not self._events:
                    self._read(deadline)
                    continue
            frame = self._events.pop(0)
            assert isinstance(frame, Frame)
            if frame.opcode is Opcode.CLOSE:
                self._flush()  # the library's close reply
                received = self.proto.close_rcvd
                raise LinkClosed(received.code if received else None, received.reason if received else "")
            if frame.opcode in (Opcode.PING, Opcode.PONG):
                continue
            if frame.opcode is not Opcode.CONT:
                parts, text = [], frame.opcode is Opcode.TEXT
            parts.append(bytes(frame.data) if not isinstance(frame.data, bytes) else frame.data)
            if frame.fin:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                return data.decode(errors="replace") if text else data

    def _read(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no reply within the timeout")
        self.sock.settimeout(remaining)
        data = self.sock.recv(RECV_PIECE)
        if data:
            self.proto.receive_data(data)
        else:
            self.proto.receive_eof()
        self._flush()
        exc = self.proto.parser_exc
        if isinstance(exc, PayloadTooBig):
            raise ResponseTooLarge(f"server message over max_response_mb ({self.max_size} bytes): {exc}")
        if exc is not None:
            raise LinkClosed(None, f"{type(exc).__name__}: {exc}")
        if not data:
            raise LinkClosed(None, "server closed the TCP connection")

    def close(self, code: int = 1000) -> None:
        try:
            if self.proto.state is State.OPEN:
                self.proto.send_close(code)
                self._flush()
            self._await_server_close(time.monotonic() + self.close_timeout)
        except OSError:
            pass
        finally:
            self.sock.close()

    def _await_server_close(self, deadline: float) -> None:
        """RFC 6455 7.1.1: after its Close frame a client lets the server close the TCP connection.
        Closing first with the server's bytes unread resets the connection, and a server still
        writing (say, a message over our cap) then never reads our Close frame and its code.
        What arrives meanwhile is parsed and dropped (after a failure the library discards it
        unparsed), so this is bounded by the deadline, not by what the server sends."""
        while self.proto.close_expected():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(RECV_PIECE)
            except TimeoutError:
                return
            if not data:
                return
            self.proto.receive_data(data)
            self.proto.events_received()  # dropped: the caller is done with this link

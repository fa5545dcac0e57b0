"""One client WebSocket, driven in the calling thread through the ``websockets`` library's
Sans-I/O protocol.

The library does the handshake and parses everything the server sends: frames, fragments,
UTF-8, pings (answered), close codes, the message size cap (close 1009 and
:class:`ResponseTooLarge` here). Only outgoing binary data frames are written here: the
library's serializer copies a 450 KB observation several times and added ~0.4 ms p50 per round
trip on a 2-core box (bench/transport_bench.py); this writer masks in one pass into a reused
buffer and hands the kernel header and payload together. Reading in the caller's thread (no
background reader, unlike ``websockets.sync``) keeps the round trip free of thread hand-offs.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time
from collections.abc import Sequence

import numpy as np
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


def mask_in_place(buf: bytearray | memoryview, n: int, mask: bytes) -> None:
    """XOR the first ``n`` bytes of ``buf`` with ``mask`` repeated (RFC 6455 5.3)."""
    view = np.frombuffer(buf, dtype=np.uint8, count=n)
    words = n // 4
    if words:
        w = view[: words * 4].view(np.uint32)
        np.bitwise_xor(w, np.frombuffer(mask, dtype=np.uint32)[0], out=w)
    for i in range(words * 4, n):
        view[i] ^= mask[i % 4]


def frame_header(opcode: int, n: int, mask: bytes) -> bytes:
    """FIN + opcode, the masked payload length (7, 16 or 64 bits), the masking key."""
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, 0x80 | n) + mask
    if n < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n) + mask
    return struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n) + mask


class WebsocketLink:
    """``send_binary`` then ``recv``; one caller at a time."""

    def __init__(
        self,
        uri: str,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        max_size: int = 1 << 26,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        try:
            wsuri = parse_uri(uri)
        except InvalidURI as exc:
            raise ValueError(f"'{uri}': expected ws://host:port[/path] or wss://...") from exc
        self.max_size = max_size
        self._out = bytearray()  # reused send buffer: fresh half-megabyte buffers page-fault every time
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
        self._plain = not wsuri.secure  # sendmsg (scatter/gather) works on plain sockets only
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
        chunks = [parts] if isinstance(parts, (bytes, bytearray, memoryview)) else parts
        views = [memoryview(p).cast("B") for p in chunks]
        n = sum(len(v) for v in views)
        if len(self._out) < n:
            self._out = bytearray(max(n, 2 * len(self._out)))
        out = memoryview(self._out)
        offset = 0
        for view in views:
            out[offset : offset + len(view)] = view
            offset += len(view)
        mask = os.urandom(4)
        mask_in_place(self._out, n, mask)
        header = frame_header(Opcode.BINARY.value, n, mask)
        if self._plain:
            self._sendmsg([header, out[:n]])
        else:
            self.sock.sendall(header + bytes(out[:n]))

    def _sendmsg(self, buffers: list[Buf]) -> None:
        views = [memoryview(b) for b in buffers if len(b)]
        while views:
            sent = self.sock.sendmsg(views)
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if views and sent:
                views[0] = views[0][sent:]

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
        except OSError:
            pass
        finally:
            self.sock.close()

"""The websocket target's own RFC 6455 client against the websockets library's server."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("websockets")

from reflex.targets.websocket.client import ConnectionClosed, HandshakeStatus, WebSocket, mask_in_place, unmask

pytestmark = pytest.mark.timeout(30)


class Server:
    def __init__(self, handler: Callable[[Any], Awaitable[None]], **kwargs: Any) -> None:
        self.handler = handler
        self.kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> int:
        from websockets.asyncio.server import serve

        async def start() -> Any:
            return await serve(self.handler, "127.0.0.1", 0, compression=None, max_size=None, **self.kwargs)

        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
        return int(self.server.sockets[0].getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.server.close()
        asyncio.run_coroutine_threadsafe(self.server.wait_closed(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def echo() -> Iterator[int]:
    async def handler(ws: Any) -> None:
        async for msg in ws:
            if msg == b"ping-first":
                await ws.ping()
                await ws.send(msg)
            elif msg == b"fragmented":
                await ws.send([b"frag", b"mented", b" reply"])
            elif msg == b"text":
                await ws.send("a text frame")
            elif msg == b"close":
                await ws.close(1011, "bye")
            else:
                await ws.send(msg)

    with Server(handler) as port:
        yield port


def test_masking_round_trips_for_every_length() -> None:
    for n in (0, 1, 3, 4, 5, 4097):
        data = os.urandom(n)
        buf = bytearray(data)
        mask = os.urandom(4)
        mask_in_place(buf, n, mask)
        assert bytes(x ^ mask[i % 4] for i, x in enumerate(data)) == bytes(buf)
        assert unmask(bytes(buf), mask) == data


def test_large_messages_and_buffer_lists_echo_exactly(echo: int) -> None:
    ws = WebSocket(f"ws://127.0.0.1:{echo}")
    try:
        big = os.urandom(450_001)
        ws.send_binary(big)
        assert ws.recv(5) == big
        parts: list[bytes | memoryview] = [b"ab", memoryview(np.arange(1000, dtype=np.uint16).tobytes()), b"c"]
        ws.send_binary(parts)
        assert ws.recv(5) == b"".join(bytes(p) for p in parts)
        ws.send_binary(b"small")  # the reused send buffer must not leak old bytes
        assert ws.recv(5) == b"small"
    finally:
        ws.close()


def test_pings_fragments_text_and_close(echo: int) -> None:
    ws = WebSocket(f"ws://127.0.0.1:{echo}")
    ws.send_binary(b"ping-first")
    assert ws.recv(5) == b"ping-first"  # the ping was answered while waiting
    ws.send_binary(b"fragmented")
    assert ws.recv(5) == b"fragmented reply"
    ws.send_binary(b"text")
    assert ws.recv(5) == "a text frame"
    ws.send_binary(b"close")
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(5)
    assert info.value.code == 1011 and info.value.reason == "bye"


def test_refused_upgrade_carries_status_and_body() -> None:
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    def refuse(connection: Any, request: Any) -> Response:
        return Response(401, "Unauthorized", Headers({"Content-Length": "14"}), b'{"error": "no"}'[:14])

    async def handler(ws: Any) -> None:
        await ws.close()

    with Server(handler, process_request=refuse) as port, pytest.raises(HandshakeStatus) as info:
        WebSocket(f"ws://127.0.0.1:{port}", {"Authorization": "Api-Key x"})
    assert info.value.status == 401 and info.value.body.startswith(b'{"error"')


def test_timeout_while_waiting(echo: int) -> None:
    ws = WebSocket(f"ws://127.0.0.1:{echo}")
    with pytest.raises(TimeoutError):
        ws.recv(0.05)  # nothing was sent, nothing comes
    ws.close()

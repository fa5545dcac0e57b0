"""The transports on their own: the WebSocket link against the websockets library's server
(which checks every frame the client writes), TLS with a self-signed certificate made here, and the
reply size cap on every transport."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("websockets")
pytest.importorskip("aiohttp")

from openpi_standin import AlohaPolicy, OpenpiStandin
from test_openpi_sessions import PlainPolicyServer
from tls_testutil import server_context

from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.ports import Frame, Observation, StateSample
from reflex.targets.http.config import HttpTargetSpec
from reflex.targets.websocket.config import WebsocketTargetSpec
from reflex.targets.websocket.link import HandshakeRefused, LinkClosed, WebsocketLink
from reflex.wire.remote_client import ResponseTooLarge

pytestmark = pytest.mark.timeout(60)


class Server:
    """A websockets asyncio server on a loopback port, on its own thread."""

    def __init__(self, handler: Callable[[Any], Awaitable[None]], **kwargs: Any) -> None:
        self.handler = handler
        self.kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.closes: list[int | None] = []
        self.closed = threading.Event()

    def __enter__(self) -> int:
        from websockets.asyncio.server import serve

        async def handler(ws: Any) -> None:
            try:
                await self.handler(ws)
            finally:
                await ws.wait_closed()
                self.closes.append(ws.close_code)
                self.closed.set()

        async def start() -> Any:
            kwargs = {"compression": None, "max_size": None, **self.kwargs}
            return await serve(handler, "127.0.0.1", 0, **kwargs)

        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
        return int(self.server.sockets[0].getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.server.close()
        asyncio.run_coroutine_threadsafe(self.server.wait_closed(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def scripted(ws: Any) -> None:
    async for msg in ws:
        if msg == b"ping-first":
            await asyncio.wait_for(await ws.ping(), 5)  # answered by the link while it waits
            await ws.send(b"pong came back")
        elif msg == b"fragmented":
            await ws.send([b"frag", b"mented", b" reply"])
        elif msg == b"text":
            await ws.send("a text frame")
        elif msg == b"close":
            await ws.close(1011, "bye")
        elif msg == b"huge":
            await ws.send(b"x" * (3 << 20))
        elif msg == b"huge-fragments":
            await ws.send([b"y" * (1 << 20)] * 3)
        elif msg == b"huge-then-stall":
            # the server's thread stalls (a loaded host) while it still has this message to write:
            # the client's Close frame and whatever the client does next meet a server not reading
            asyncio.get_running_loop().call_later(0.05, time.sleep, 1.0)
            await ws.send(b"z" * (64 << 20))
        elif msg != b"silence":
            await ws.send(msg)


@pytest.fixture
def server() -> Iterator[tuple[Server, int]]:
    srv = Server(scripted)
    with srv as port:
        yield srv, port


def test_large_messages_and_buffer_lists_reach_the_library_server_intact(server: tuple[Server, int]) -> None:
    _, port = server
    link = WebsocketLink(f"ws://127.0.0.1:{port}")
    for size in (0, 1, 125, 126, 65535, 65536, 452_000, 2_000_003):
        payload = os.urandom(size)
        link.send_binary(payload)
        assert link.recv(10) == payload
    arr = np.arange(1000, dtype=np.float32)
    link.send_binary([b"head", memoryview(arr).cast("B"), b"tail"])
    assert link.recv(10) == b"head" + arr.tobytes() + b"tail"
    link.close()


def test_pings_fragments_text_and_close_codes(server: tuple[Server, int]) -> None:
    _, port = server
    link = WebsocketLink(f"ws://127.0.0.1:{port}")
    link.send_binary(b"ping-first")
    assert link.recv(10) == b"pong came back"
    link.send_binary(b"fragmented")
    assert link.recv(10) == b"fragmented reply"
    link.send_binary(b"text")
    assert link.recv(10) == "a text frame"
    link.send_binary(b"close")
    with pytest.raises(LinkClosed) as closed:
        link.recv(10)
    assert closed.value.code == 1011 and closed.value.reason == "bye"
    with pytest.raises(LinkClosed):
        link.send_binary(b"after close")
    link.close()


@pytest.mark.parametrize("what", ["huge", "huge-fragments", "huge-then-stall"])
def test_a_message_over_the_cap_fails_without_reading_it(server: tuple[Server, int], what: str) -> None:
    """The link fails with 1009 and the server hears why, even when the server is still writing
    and slow to read: the link lets the server end the TCP connection (closing first would reset
    it, and the server would see 1006 without our Close frame)."""
    srv, port = server
    link = WebsocketLink(f"ws://127.0.0.1:{port}", max_size=2 << 20, close_timeout=30)
    link.send_binary(what.encode())
    with pytest.raises(ResponseTooLarge, match="max_response_mb"):
        link.recv(10)
    link.close()
    assert srv.closed.wait(10)
    assert srv.closes == [1009]  # the library told the server why: message too big


def test_refused_upgrade_carries_status_and_body() -> None:
    from websockets.http11 import Response

    def refuse(connection: Any, request: Any) -> Response:
        return connection.respond(401, '{"error": {"status": 401, "message": "bad key"}}')

    with Server(scripted, process_request=refuse) as port, pytest.raises(HandshakeRefused) as refused:
        WebsocketLink(f"ws://127.0.0.1:{port}", {"Authorization": "Api-Key x"})
    assert refused.value.status == 401 and b"bad key" in refused.value.body


def test_timeout_while_waiting(server: tuple[Server, int]) -> None:
    _, port = server
    link = WebsocketLink(f"ws://127.0.0.1:{port}")
    link.send_binary(b"silence")
    with pytest.raises(TimeoutError):
        link.recv(0.2)
    link.close()


# -- TLS ----------------------------------------------------------------------------------------

OPENPI = {"images": {"top": ["images", "cam_high"]}, "image_layout": "chw", "action_dt_s": 0.02}
MAPPING = {"images": {"top": "image"}, "image_encoding": "png", "actions_path": "result.actions",
           "action_dt_s": 0.02}


def observation() -> Observation:
    now = 0.0
    return Observation(
        step=0, state=StateSample(position=np.linspace(-0.5, 0.5, 14), t_capture=now),
        images={"top": Frame(np.full((96, 128, 3), 90, dtype=np.uint8), now, 1)}, task="wave",
    )


def test_wss_and_https_targets_with_a_self_signed_certificate(tmp_path: Path) -> None:
    context, cert = server_context(tmp_path)
    ctx = BuildContext(config_dir=tmp_path)
    with OpenpiStandin(AlohaPolicy(), {}, ssl_context=context) as openpi:
        assert openpi.url.startswith("wss://")
        spec = WebsocketTargetSpec(url=openpi.url, api_key_env=None, image_size=(224, 224), ca_file="cert.pem",
                                   openpi=OPENPI)  # type: ignore[arg-type]
        target = spec.build(ctx)
        target.connect()
        actions, _ = target.infer(observation())
        target.close()
        np.testing.assert_array_equal(actions, openpi.sent[0])
        untrusted = WebsocketTargetSpec(url=openpi.url, api_key_env=None, connect_timeout_s=0.3,
                                        openpi=OPENPI)  # type: ignore[arg-type]
        with pytest.raises(SetupError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.build(ctx).connect()
    with PlainPolicyServer(ssl_context=context) as plain:
        assert plain.url.startswith("https://")
        http_spec = HttpTargetSpec(url=plain.url, api_key_env=None, health_path="/", ca_file=str(cert),
                                   mapping=MAPPING)  # type: ignore[arg-type]
        target = http_spec.build(ctx)
        target.connect()
        actions, _ = target.infer(observation())
        target.close()
        np.testing.assert_array_equal(actions, plain.sent[0])


# -- the size cap on http --------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_an_http_reply_over_the_cap_is_refused_unread(tmp_path: Path, chunked: bool) -> None:
    with PlainPolicyServer(flood_bytes=20 << 20, flood_chunked=chunked) as plain:
        spec = HttpTargetSpec(url=plain.url, api_key_env=None, health_path="/", max_response_mb=2,
                              mapping=MAPPING)  # type: ignore[arg-type]
        target = spec.build(BuildContext(config_dir=tmp_path))
        target.connect()
        with pytest.raises(ResponseTooLarge, match="max_response_mb"):
            target.infer(observation())
        target.close()
        assert plain.flood_sent < 20 << 20  # the client stopped reading; the server could not finish

"""WebRTC transport: aiortc on its own event-loop thread, driven by blocking ``exchange`` calls.

HTTP offer/answer at ``<url>/webrtc/offer`` (after ``/health`` says ready), then each request
as numbered fragments over one data channel; the reply comes back the same way in an envelope
``{"status", "result"}``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from reflex.targets.http.transport import HttpSession
from reflex.targets.remote.ports import Reply, Request
from reflex.targets.webrtc.config import WebrtcTargetSpec
from reflex.wire.fragments import FragmentError, Reassembler, split_message
from reflex.wire.msgpack_numpy import WireFormatError, unpackb
from reflex.wire.remote_client import RemoteError, ResponseTooLarge, TransportFailure, error_from_status

T = TypeVar("T")


class WebrtcTransport:
    name = "webrtc"

    def __init__(self, spec: WebrtcTargetSpec, http: HttpSession) -> None:
        self.spec = spec
        self.url = spec.url
        self.http = http
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pc: Any = None
        self._channel: Any = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._reassembler = Reassembler(spec.max_response_bytes)
        self._part_bytes = spec.part_bytes
        self._pending_channel: Any = None

    def open(self) -> Reply:
        """``GET /health``; once the server is ready, negotiate the data channel."""
        from reflex.wire.ice import default_ice_addresses, pin_host_addresses

        addresses = self.spec.ice_addresses
        pin_host_addresses(addresses if addresses is not None else default_ice_addresses(self.spec.url))
        self._start_loop()
        health = self.http.request("GET", self.spec.health_path, headers={"Accept": "application/json"})
        if health.status == 200:
            self._open_peer()
        return health

    def exchange(self, request: Request, timeout_s: float) -> Reply:
        if self._channel is None:
            self._open_peer()
        msg_id = next(self._ids)
        parts = split_message(msg_id, b"".join(request.parts), self._part_bytes)
        reply = self._run(self._request(msg_id, parts), timeout_s, "request")
        if not isinstance(reply, dict):
            raise RemoteError(502, f"webrtc reply is {type(reply).__name__}, expected an envelope")
        status = reply.get("status", 502)
        status = status if isinstance(status, int) else 502
        return Reply(status, "application/msgpack", payload=reply.get("result") if status == 200 else reply)

    def close(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):  # closing a broken peer: nothing left to do
                asyncio.run_coroutine_threadsafe(self._close_peer(), loop).result(5.0)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5.0)
        self._thread = self._loop = None
        self.http.close()

    # -- signaling ------------------------------------------------------------------------------
    def _open_peer(self) -> None:
        """Offer, POST it, apply the answer, wait for the channel to open."""
        self._run(self._close_peer(), 5.0, "close")
        offer = self._run(self._make_offer(), self.spec.connect_timeout_s, "offer")
        reply = self.http.request(
            "POST", self.spec.offer_path, json.dumps(offer).encode(), {"Content-Type": "application/json"}
        )
        status, ctype = reply.status, reply.content_type
        answer = reply.decoded()
        if status != 200:
            raise error_from_status(status, answer, f"POST {self.spec.offer_path}")
        if not isinstance(answer, dict) or not isinstance(answer.get("sdp"), str):
            raise RemoteError(502, f"POST {self.spec.offer_path}: answer has no sdp (content type {ctype})")
        self._part_bytes = min(self.spec.part_bytes, int(answer.get("part_bytes") or self.spec.part_bytes))
        self._run(self._accept(answer["sdp"]), self.spec.connect_timeout_s, "channel open")

    # -- event-loop side ------------------------------------------------------------------------
    def _start_loop(self) -> None:
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="reflex-webrtc", daemon=True)
        self._thread.start()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        assert self._loop is not None, "webrtc target used before connect"
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            self._run_quiet(self._close_peer())
            raise TransportFailure(f"webrtc {what}: no answer within {timeout:g} s") from exc

    def _run_quiet(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        with contextlib.suppress(Exception):  # best effort: the peer is being dropped anyway
            asyncio.run_coroutine_threadsafe(coro, self._loop).result(5.0)

    async def _make_offer(self) -> dict[str, str]:
        from aiortc import RTCPeerConnection

        from reflex.wire.ice import rtc_configuration

        pc = RTCPeerConnection(rtc_configuration(self.spec.ice_servers))
        channel = pc.createDataChannel("reflex", ordered=self.spec.channel == "ordered")
        channel.on("message", self._on_message)

        def _closed() -> None:
            if self._pc is pc:  # an old peer closing late must not fail the new one
                self._fail_pending("data channel closed")

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState in ("failed", "closed") and self._pc is pc:
                self._fail_pending(f"peer connection {pc.connectionState}")

        channel.on("close", _closed)

        self._pc, self._channel = pc, None
        self._pending_channel = channel
        await pc.setLocalDescription(await pc.createOffer())
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async def _accept(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        pc, channel = self._pc, self._pending_channel
        opened = asyncio.Event()
        if channel.readyState == "open":
            opened.set()
        else:
            channel.once("open", opened.set)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await opened.wait()
        self._channel = channel

    async def _request(self, msg_id: int, parts: list[bytes]) -> Any:
        channel = self._channel
        if channel is None or channel.readyState != "open":
            raise TransportFailure("webrtc data channel is not open")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            for part in parts:
                channel.send(part)
            return await future
        finally:
            self._pending.pop(msg_id, None)

    def _on_message(self, data: bytes | str) -> None:
        if isinstance(data, str):
            return
        try:
            done = self._reassembler.feed(data)
        except FragmentError as exc:
            if "limit" in str(exc):  # over max_response_mb: the waiting request fails, not retried
                self._fail_pending(str(exc), ResponseTooLarge)
            return
        if done is None:
            return
        msg_id, body = done
        future = self._pending.get(msg_id)
        if future is None or future.done():
            return  # the answer to a request that already timed out
        try:
            reply = unpackb(body)
        except WireFormatError as exc:
            future.set_exception(RemoteError(502, f"webrtc response is not msgpack: {exc}"))
            return
        future.set_result(reply)

    def _fail_pending(self, reason: str, error: type[Exception] = TransportFailure) -> None:
        if error is TransportFailure:
            self._channel = None
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(error(f"webrtc: {reason}"))

    async def _close_peer(self) -> None:
        pc, self._pc, self._channel = self._pc, None, None
        self._fail_pending("peer closed")
        if pc is not None:
            await pc.close()

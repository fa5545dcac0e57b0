"""WebRTC: HTTP offer/answer signaling, then request/response over a data channel.

``POST /webrtc/offer`` takes ``{"sdp", "type": "offer"}`` and answers ``{"sdp", "type":
"answer", "model": {...}, "part_bytes", "max_message_bytes"}``; aiortc gathers every candidate
before answering (no trickle ICE), so one round trip completes the negotiation. On the client's
channel each message is split into parts (``reflex.wire.fragments``); a request is a
msgpack-numpy /act request (images as JPEG bytes), a response is ``{"status": 200, "result":
{...}}`` or ``{"status": 4xx/5xx, "error": {...}}`` and reuses the request's message id.
Actions travel as float32 here (half the bytes through the slow SCTP stack).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import numpy as np
from aiohttp import web

from reflex.serve.http_api import HOST_KEY, OPTIONS_KEY
from reflex.serve.model import ModelInfo
from reflex.serve.request import RequestError, decode_json_body, parse_act_request
from reflex.serve.response import build_response
from reflex.wire.fragments import DEFAULT_PART_BYTES, FragmentError, Reassembler, split_message
from reflex.wire.msgpack_numpy import WireFormatError, packb, unpackb

log = logging.getLogger("reflex.serve")


class Peers:
    """The open peer connections of one app (closed on shutdown), and which client holds each."""

    def __init__(self) -> None:
        self.open: set[Any] = set()
        self.client_of: dict[Any, str] = {}

    def held_by(self, client: str) -> int:
        return sum(1 for pc in self.open if self.client_of.get(pc) == client)

    def add(self, pc: Any, client: str) -> None:
        self.open.add(pc)
        self.client_of[pc] = client

    def discard(self, pc: Any) -> None:
        self.open.discard(pc)
        self.client_of.pop(pc, None)


PEERS_KEY: web.AppKey[Peers] = web.AppKey("webrtc_peers", Peers)
OFFER_FIELDS = ("sdp", "type")


def webrtc_available() -> bool:
    try:
        import aiortc  # noqa: F401
    except ImportError:
        return False
    return True


async def offer(request: web.Request) -> web.Response:
    host = request.app[HOST_KEY]
    options = request.app[OPTIONS_KEY]
    info = host.require_ready()
    if not webrtc_available():
        raise RequestError(501, "webrtc_unavailable", "aiortc is not installed: pip install 'reflex-runtime[webrtc]'")
    sdp = await _parse_offer(request)
    registry = request.app[PEERS_KEY]
    peers = registry.open
    client = request.remote or "unknown"
    if len(peers) >= options.max_peers:
        raise RequestError(
            429, "too_many_peers", f"{len(peers)} WebRTC peers connected (max_peers {options.max_peers})"
        )
    if registry.held_by(client) >= options.max_peers_per_client:
        raise RequestError(
            429, "too_many_peers", f"this client already holds {registry.held_by(client)} WebRTC peer(s) "
            f"(max_peers_per_client {options.max_peers_per_client})"
        )

    from aiortc import RTCPeerConnection, RTCSessionDescription

    from reflex.wire.ice import rtc_configuration

    pc = RTCPeerConnection(rtc_configuration(options.ice_servers))
    registry.add(pc, client)

    @pc.on("datachannel")
    def _on_channel(channel: Any) -> None:
        ChannelHandler(request.app, info, channel)

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            registry.discard(pc)
            await pc.close()

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as exc:
        registry.discard(pc)
        await pc.close()
        raise RequestError(400, "invalid_offer", f"cannot negotiate the offer: {exc}") from exc
    # A peer that never connects (a junk or abandoned offer) must not keep its slot.
    asyncio.get_running_loop().call_later(
        options.peer_connect_timeout_s, lambda: asyncio.ensure_future(_drop_unconnected(registry, pc))
    )
    return web.json_response(
        {
            "sdp": pc.localDescription.sdp,
            "type": pc.localDescription.type,
            "model": info.to_dict(),
            "part_bytes": DEFAULT_PART_BYTES,
            "max_message_bytes": options.max_request_bytes,
        }
    )


async def _drop_unconnected(registry: Peers, pc: Any) -> None:
    if pc in registry.open and pc.connectionState != "connected":
        log.info("webrtc: dropping a peer that did not connect in time (state %s)", pc.connectionState)
        registry.discard(pc)
        await pc.close()


async def _parse_offer(request: web.Request) -> str:
    body = decode_json_body(await request.read(), "offer body")
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_body", "the offer must be a JSON object")
    for key in body:
        if key not in OFFER_FIELDS:
            raise RequestError(422, "unknown_field", f"unknown field '{key}' (an offer has sdp and type)", key)
    if body.get("type") != "offer":
        raise RequestError(422, "invalid_field", "type: expected 'offer'", "type")
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise RequestError(422, "missing_field", "missing field 'sdp'", "sdp")
    problem = sdp_problem(sdp)
    if problem is not None:
        raise RequestError(422, "invalid_field", f"sdp: {problem}", "sdp")
    return sdp


MAX_SDP_BYTES = 64 * 1024
_SDP_LINE = re.compile(r"[a-z]=[\x20-\x7e\t]*")


def sdp_problem(sdp: str) -> str | None:
    """Why ``sdp`` is not a usable offer (RFC 8866 framing, a data channel section), or None."""
    if len(sdp) > MAX_SDP_BYTES:
        return f"longer than {MAX_SDP_BYTES} characters"
    lines = [ln for ln in sdp.replace("\r\n", "\n").split("\n") if ln]
    if not lines or lines[0] != "v=0":
        return "an SDP offer starts with the line 'v=0'"
    for number, line in enumerate(lines, 1):
        if not _SDP_LINE.fullmatch(line):
            return f"line {number} is not '<letter>=<value>': {line[:60]!r}"
    kinds = {ln[0] for ln in lines}
    missing = [k for k in "ost" if k not in kinds]
    if missing:
        return f"missing the {', '.join(repr(k + '=') for k in missing)} line(s)"
    media = [ln for ln in lines if ln.startswith("m=")]
    if not any(ln.startswith("m=application") and "SCTP" in ln.upper() for ln in media):
        return "no data channel section ('m=application ... DTLS/SCTP'): this server speaks data channels"
    if not any(ln.startswith(("a=fingerprint:", "a=ice-ufrag:")) for ln in lines):
        return "no ICE credentials or DTLS fingerprint"
    return None


async def close_peers(app: web.Application) -> None:
    peers = list(app[PEERS_KEY].open)
    app[PEERS_KEY].open.clear()
    app[PEERS_KEY].client_of.clear()
    await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)


class ChannelHandler:
    """Answers every request arriving on one data channel."""

    def __init__(self, app: web.Application, info: ModelInfo, channel: Any) -> None:
        self.app = app
        self.info = info
        self.channel = channel
        self.reassembler = Reassembler(max_message_bytes=app[OPTIONS_KEY].max_request_bytes)
        self._tasks: set[asyncio.Task[None]] = set()
        channel.on("message", self.on_message)

    def on_message(self, data: bytes | str) -> None:
        if isinstance(data, str):
            log.warning("webrtc: ignoring a text message; requests are binary parts")
            return
        try:
            done = self.reassembler.feed(data)
        except FragmentError as exc:
            log.warning("webrtc: dropped a malformed part: %s", exc)
            return
        if done is not None:
            task = asyncio.ensure_future(self.answer(*done, time.perf_counter()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def answer(self, msg_id: int, body: bytes, t_received: float) -> None:
        reply: dict[str, Any]
        try:
            try:
                payload = unpackb(body)
            except WireFormatError as exc:
                raise RequestError(400, "invalid_body", str(exc)) from None
            options = self.app[OPTIONS_KEY]
            req = parse_act_request(payload, self.info, options.resize_images, options.max_image_pixels)
            decode_ms = (time.perf_counter() - t_received) * 1e3
            actions, timing = await self.app[HOST_KEY].infer(req)
            result = build_response(self.info, req, actions, timing, t_received, decode_ms, np.float32)
            reply = {"status": 200, "result": result}
        except RequestError as err:
            reply = {"status": err.status, "error": err.to_dict()}
        if self.channel.readyState != "open":
            return
        for part in split_message(msg_id, packb(reply)):
            self.channel.send(part)

"""WebSocket endpoint speaking openpi's policy-server protocol, so openpi-client works unmodified.

Protocol: after the upgrade the server sends one binary frame, the msgpack-numpy metadata;
then each binary request frame (msgpack-numpy observation) gets one binary response frame.
Differences from openpi's server, all compatible with its client: an error is a *text* frame
holding a JSON ``{"error": {...}}`` and the connection stays open (openpi closes with 1011),
inference runs off the event loop (pings stay answered however long it takes), and the API key
is checked (openpi ignores it).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from reflex import __version__
from reflex.serve.http_api import HOST_KEY, OPTIONS_KEY, index_body
from reflex.serve.model import ModelInfo
from reflex.serve.request import RequestError, parse_act_request
from reflex.serve.response import build_response, error_body
from reflex.wire.msgpack_numpy import WireFormatError, packb, unpackb

log = logging.getLogger("reflex.serve")


class OpenSockets:
    """Open WebSocket connections, closed on shutdown (clients like openpi's never close)."""

    def __init__(self) -> None:
        self.open: set[web.WebSocketResponse] = set()
        self.client_of: dict[web.WebSocketResponse, str] = {}


SOCKETS_KEY: web.AppKey[OpenSockets] = web.AppKey("websockets", OpenSockets)


async def close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS_KEY].open):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def metadata(info: ModelInfo) -> dict[str, Any]:
    """The handshake frame: openpi-flash's ``action_horizon`` plus the full model description."""
    return {"server": "reflex", "version": __version__, "action_horizon": info.chunk_length, "model": info.to_dict()}


async def root(request: web.Request) -> web.StreamResponse:
    """``GET /``: the openpi WebSocket endpoint when upgrading, otherwise a JSON index."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return web.json_response(index_body(request.app))
    return await websocket(request)


async def websocket(request: web.Request) -> web.StreamResponse:
    host = request.app[HOST_KEY]
    options = request.app[OPTIONS_KEY]
    info = host.require_ready()  # 503 before the upgrade: the client fails fast and clearly
    client = request.remote or "unknown"
    registry = request.app[SOCKETS_KEY]
    held = sum(1 for sock in registry.open if registry.client_of.get(sock) == client)
    if held >= options.max_sockets_per_client:
        raise RequestError(429, "too_many_connections", f"this client already holds {held} WebSocket "
                           f"connection(s) (max_sockets_per_client {options.max_sockets_per_client})")
    ws = web.WebSocketResponse(max_msg_size=options.max_request_bytes, compress=False, heartbeat=None)
    await ws.prepare(request)
    registry.client_of[ws] = client
    sockets = registry.open
    sockets.add(ws)
    try:
        await _serve(request.app, info, ws)
    finally:
        sockets.discard(ws)
        registry.client_of.pop(ws, None)
    return ws


async def _serve(app: web.Application, info: ModelInfo, ws: web.WebSocketResponse) -> None:
    await ws.send_bytes(packb(metadata(info)))
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            reply = await _answer(app, info, msg.data)
            if isinstance(reply, str):
                await ws.send_str(reply)
            else:
                await ws.send_bytes(reply)
        elif msg.type == WSMsgType.TEXT:
            err = RequestError(400, "invalid_body", "send binary msgpack frames; text frames are for errors")
            await ws.send_str(json.dumps(error_body(err)))
        elif msg.type == WSMsgType.ERROR:
            log.info("websocket closed with error: %s", ws.exception())
            break


async def _answer(app: web.Application, info: ModelInfo, data: bytes) -> bytes | str:
    t_received = time.perf_counter()
    try:
        try:
            payload = unpackb(data)
        except WireFormatError as exc:
            raise RequestError(400, "invalid_body", str(exc)) from None
        req = parse_act_request(payload, info, app[OPTIONS_KEY].resize_images, app[OPTIONS_KEY].max_image_pixels)
        decode_ms = (time.perf_counter() - t_received) * 1e3
        actions, timing = await app[HOST_KEY].infer(req)
        return packb(build_response(info, req, actions, timing, t_received, decode_ms))
    except RequestError as err:
        return json.dumps(error_body(err))

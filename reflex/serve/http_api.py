"""HTTP endpoints: ``POST /act``, ``GET /health``, ``GET /healthz``, and the JSON error middleware."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reflex import __version__
from reflex.serve.auth import check_key
from reflex.serve.host import PolicyHost
from reflex.serve.metrics import ERROR_CODE_KEY, REQUEST_ID_KEY
from reflex.serve.options import ServeOptions
from reflex.serve.request import RequestError, decode_json_body, parse_act_request
from reflex.serve.response import build_response, error_body, server_timing_header, to_json_ready
from reflex.wire.msgpack_numpy import WireFormatError, packb, unpackb

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
HOST_KEY: web.AppKey[PolicyHost] = web.AppKey("host", PolicyHost)
OPTIONS_KEY: web.AppKey[ServeOptions] = web.AppKey("options", ServeOptions)

log = logging.getLogger("reflex.serve")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(err: RequestError) -> web.Response:
    headers = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reflex"'
    elif err.status in (429, 503):
        headers["Retry-After"] = "1"
    return web.json_response(error_body(err), status=err.status, headers=headers)


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API key on every endpoint; every refusal is a JSON body with a code and the field."""
    try:
        check_key(request.app[OPTIONS_KEY].api_key, request.headers)
        return await handler(request)
    except RequestError as err:
        return _refused(request, err)
    except web.HTTPRequestEntityTooLarge as exc:
        return _refused(request, RequestError(413, "too_large", f"request body over the size limit: {exc.text}"))
    except web.HTTPException:
        raise  # aiohttp's own answers (404, 405, ...)
    except Exception as exc:  # a bug: still a JSON body, never a plain-text 500 page
        log.exception("unhandled error on %s %s", request.method, request.path)
        failure = RequestError(500, "internal_error", f"{type(exc).__name__} while handling the request")
        return _refused(request, failure)


def _refused(request: web.Request, err: RequestError) -> web.Response:
    request[ERROR_CODE_KEY] = err.code  # the metrics middleware counts errors by code
    return json_error(err)


async def act(request: web.Request) -> web.Response:
    host = request.app[HOST_KEY]
    options = request.app[OPTIONS_KEY]
    info = host.require_ready()
    ctype = request.content_type
    if ctype not in (*MSGPACK_TYPES, "application/json"):
        raise RequestError(
            415, "unsupported_media_type", f"send application/json or application/msgpack, not '{ctype}'"
        )
    body = await request.read()
    t_received = time.perf_counter()
    payload = _decode_body(body, ctype)
    req = parse_act_request(payload, info, options.resize_images, options.max_image_pixels)
    decode_ms = (time.perf_counter() - t_received) * 1e3
    if req.request_id is None:  # every answer carries an id; the robot records it with the chunk
        req.request_id = request.get(REQUEST_ID_KEY)
    if req.request_id is not None:
        request[REQUEST_ID_KEY] = req.request_id
    actions, timing = await host.infer(req)
    response = build_response(info, req, actions, timing, t_received, decode_ms)
    headers = {"Server-Timing": server_timing_header(response)}
    if _wants_msgpack(request, ctype):
        return web.Response(body=packb(response), content_type="application/msgpack", headers=headers)
    return web.json_response(to_json_ready(response), headers=headers)


def _decode_body(body: bytes, ctype: str) -> Any:
    if ctype == "application/json":
        return decode_json_body(body)
    try:
        return unpackb(body)
    except WireFormatError as exc:
        raise RequestError(400, "invalid_body", str(exc)) from None


def _wants_msgpack(request: web.Request, ctype: str) -> bool:
    accept = request.headers.get("Accept", "")
    if any(t in accept for t in MSGPACK_TYPES):
        return True
    if "application/json" in accept:
        return False
    return ctype in MSGPACK_TYPES


async def health(request: web.Request) -> web.Response:
    host = request.app[HOST_KEY]
    body = host.health()
    body["version"] = __version__
    body["transports"] = transports(request.app)
    return web.json_response(body, status=200 if host.ready else 503)


async def healthz(request: web.Request) -> web.Response:
    """openpi's liveness probe: plain ``OK`` once the model is ready."""
    ready = request.app[HOST_KEY].ready
    return web.Response(text="OK\n" if ready else "NOT READY\n", status=200 if ready else 503)


def transports(app: web.Application) -> dict[str, str]:
    found = {"http": "/act", "websocket": "/ (openpi protocol; also /ws)"}
    if app[OPTIONS_KEY].webrtc:
        found["webrtc"] = "/webrtc/offer"
    return found


def index_body(app: web.Application) -> dict[str, Any]:
    return {"server": "reflex serve", "version": __version__, "endpoints": transports(app), "health": "/health"}

"""The WebSocket target: openpi's protocol, one connection, strict request/response turns."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reflex.errors import SetupError
from reflex.ports import Observation, TargetInfo
from reflex.targets.websocket.client import HandshakeStatus, WebSocket
from reflex.targets.websocket.config import KeyPath, OpenpiMapping, WebsocketTargetSpec
from reflex.wire.jpeg import resize_rgb
from reflex.wire.msgpack_numpy import WireFormatError, pack_parts, unpackb
from reflex.wire.remote_client import (
    RemoteError,
    TransportFailure,
    call_with_retry,
    check_model_routing,
    chunk_from_response,
    encode_frames,
    error_from_status,
    model_image_sizes,
    reflex_request,
    select_frames,
    target_info,
    timing_dict,
    wait_until_ready,
)

STAGE = "target (websocket)"


class WebsocketTarget:
    def __init__(self, spec: WebsocketTargetSpec, api_key: str | None) -> None:
        self.spec = spec
        self.api_key = api_key
        url = spec.url if "://" in spec.url else f"ws://{spec.url}"
        if not url.startswith(("ws://", "wss://")):
            raise SetupError(STAGE, f"url '{spec.url}': expected ws://host:port or wss://host:port")
        self.uri = url
        self._ws: WebSocket | None = None
        self.metadata: dict[str, Any] = {}
        self.image_sizes: dict[str, tuple[int, int]] = {}
        self.encoder = spec.jpeg_encoder() if spec.image_encoding == "jpeg" else None
        self._image_bytes = 0

    # -- Target port ------------------------------------------------------------------------
    def connect(self) -> TargetInfo:
        self.metadata = wait_until_ready(self._open, self.spec.connect_timeout_s, STAGE)
        mapping = self.spec.openpi
        if mapping is not None:
            return self._openpi_info(mapping)
        model = self.metadata.get("model")
        if not isinstance(model, Mapping):
            raise SetupError(
                STAGE,
                "the server's metadata has no model description: an openpi server needs target.openpi "
                "(observation keys, action_dim, action_dt_s)",
            )
        check_model_routing(self.spec, model, STAGE)
        self.image_sizes = model_image_sizes(model)
        return target_info("websocket", model, self.uri)

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        message = pack_parts(self._observation(obs))
        encode_ms = (time.perf_counter() - t0) * 1e3

        def attempt() -> tuple[float, Any]:
            if self._ws is None:
                self._open()
            t_send = time.perf_counter()
            reply = self._roundtrip(message)
            return (time.perf_counter() - t_send) * 1e3, reply

        (rtt_ms, reply), retries = call_with_retry(self.spec, attempt, f"websocket {self.uri}")
        key = self.spec.openpi.actions_key if self.spec.openpi else "actions"
        actions, server_ms = chunk_from_response(reply, STAGE, key)
        timing = timing_dict(rtt_ms, server_ms, retries, encode_ms)
        timing["image_bytes"] = float(self._image_bytes)
        return actions, timing

    def close(self) -> None:
        self._drop()

    # -- connection ---------------------------------------------------------------------------
    def _open(self) -> dict[str, Any]:
        self._drop()
        headers = {"Authorization": f"{self.spec.auth_scheme} {self.api_key}"} if self.api_key else None
        # No keepalive pings: each request is bounded by timeout_s, and pings would only kill a
        # slow but healthy inference on servers that block their event loop (openpi does).
        try:
            ws = WebSocket(
                self.uri, headers, self.spec.connect_timeout_s, int(self.spec.max_message_mb * 1024 * 1024)
            )
        except HandshakeStatus as exc:
            body = _json_or_text(exc.body)
            raise error_from_status(exc.status, body, f"websocket upgrade at {self.uri}") from exc
        except (OSError, TimeoutError) as exc:
            raise TransportFailure(f"cannot open {self.uri}: {exc!r}") from exc
        try:
            first = ws.recv(self.spec.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            ws.close()
            raise TransportFailure(f"{self.uri}: no metadata frame after connecting: {exc!r}") from exc
        if isinstance(first, str):
            ws.close()
            raise RemoteError(502, f"{self.uri}: server sent a text frame instead of its metadata: {first[:200]}")
        try:
            meta = unpackb(first)
        except WireFormatError as exc:
            ws.close()
            raise RemoteError(502, f"{self.uri}: metadata frame is not msgpack: {exc}") from exc
        self._ws = ws
        return meta if isinstance(meta, dict) else {}

    def _roundtrip(self, message: Sequence[bytes | memoryview]) -> Any:
        ws = self._ws
        assert ws is not None, "roundtrip without a connection"
        try:
            ws.send_binary(message)
            reply = ws.recv(self.spec.timeout_s)
        except (OSError, TimeoutError) as exc:
            # After a timeout the late answer would pair with the next request: start over.
            self._drop()
            raise TransportFailure(f"{self.uri}: {exc!r}") from exc
        if isinstance(reply, str):
            body = _json_or_text(reply.encode())
            status = _status_of(body)
            raise error_from_status(status, body, f"websocket {self.uri}")
        try:
            return unpackb(reply)
        except WireFormatError as exc:
            raise RemoteError(502, f"{self.uri}: response is not msgpack: {exc}") from exc

    def _drop(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            with contextlib.suppress(Exception):  # closing a dead socket: nothing left to do
                ws.close()

    # -- observation layouts ------------------------------------------------------------------
    def _observation(self, obs: Observation) -> dict[str, Any]:
        mapping = self.spec.openpi
        if mapping is None:
            frames = select_frames(obs, self.image_sizes, self.spec.image_size)
            images, self._image_bytes = encode_frames(frames, self.encoder)
            return reflex_request(obs, images, self.spec.model)
        out: dict[str, Any] = dict(mapping.extra)
        self._image_bytes = 0
        dtype = np.float32 if mapping.state_dtype == "float32" else np.float64
        _put(out, mapping.state, np.asarray(obs.state.position, dtype=dtype))
        for camera, path in mapping.images.items():
            frame = obs.images.get(camera)
            if frame is None:
                raise RemoteError(422, f"{STAGE}: no frame from camera '{camera}' (target.openpi.images)")
            image = frame.image
            if self.spec.image_size is not None:
                image = resize_rgb(image, *self.spec.image_size)
            if mapping.image_layout == "chw":
                image = np.ascontiguousarray(image.transpose(2, 0, 1))
            _put(out, path, image)
            self._image_bytes += image.nbytes
        if mapping.prompt is not None:
            _put(out, mapping.prompt, obs.task)
        return out

    def _openpi_info(self, mapping: OpenpiMapping) -> TargetInfo:
        horizon = mapping.chunk_length or self.metadata.get("action_horizon")
        if not isinstance(horizon, int) or horizon <= 0:
            horizon = None  # openpi metadata may be {}: the chunks will tell
        return TargetInfo(
            kind="websocket",
            action_dim=mapping.action_dim,
            state_dim=None,  # openpi metadata does not say: unknown, never a mismatch
            chunk_length=horizon,
            action_dt=mapping.action_dt_s,
            image_keys=tuple(mapping.images),
            details={"url": self.uri, "server_metadata": _printable(self.metadata)},
        )


def _put(out: dict[str, Any], path: KeyPath, value: Any) -> None:
    keys = [path] if isinstance(path, str) else list(path)
    node = out
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _json_or_text(data: bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def _status_of(body: Any) -> int:
    err = body.get("error") if isinstance(body, Mapping) else None
    status = err.get("status") if isinstance(err, Mapping) else None
    return int(status) if isinstance(status, int) else 500  # openpi: a traceback means a 500


def _printable(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in meta.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}

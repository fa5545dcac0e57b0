"""The HTTP target: one persistent connection, the observation encoded once per request."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import numpy as np

from reflex.errors import SetupError
from reflex.ports import Observation, TargetInfo
from reflex.targets.http.client import HttpSession
from reflex.targets.http.config import HttpMapping, HttpTargetSpec
from reflex.wire.jpeg import encode_jpeg
from reflex.wire.msgpack_numpy import WireFormatError, packb, unpackb
from reflex.wire.remote_client import (
    RemoteError,
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

STAGE = "target (http)"


class HttpTarget:
    def __init__(self, spec: HttpTargetSpec, api_key: str | None) -> None:
        self.spec = spec
        headers = dict(spec.mapping.headers) if spec.mapping else {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        try:
            self.session = HttpSession(spec.url, headers, spec.timeout_s)
        except ValueError as exc:
            raise SetupError(STAGE, str(exc)) from exc
        self.image_sizes: dict[str, tuple[int, int]] = {}
        self.encoder = spec.jpeg_encoder() if spec.image_encoding == "jpeg" else None
        self._image_bytes = 0

    # -- Target port ------------------------------------------------------------------------
    def connect(self) -> TargetInfo:
        spec = self.spec
        if spec.mapping is not None:
            return self._connect_mapped(spec.mapping)
        model = wait_until_ready(self._probe_health, spec.connect_timeout_s, STAGE)
        check_model_routing(spec, model, STAGE)
        self.image_sizes = model_image_sizes(model)
        return target_info("http", model, spec.url, {"encoding": spec.encoding})

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        body, ctype = self._encode(obs)
        encode_ms = (time.perf_counter() - t0) * 1e3
        headers = {"Content-Type": ctype, "Accept": ctype}

        def attempt() -> tuple[float, Any]:
            t_send = time.perf_counter()
            status, rtype, data = self.session.request("POST", self.spec.act_path, body, headers)
            rtt_ms = (time.perf_counter() - t_send) * 1e3
            payload = self._decode(data, rtype)
            if status != 200:
                raise error_from_status(status, payload, f"POST {self.spec.act_path}")
            return rtt_ms, payload

        (rtt_ms, payload), retries = call_with_retry(self.spec, attempt, f"POST {self.spec.url}{self.spec.act_path}")
        mapping = self.spec.mapping
        if mapping is None:
            actions, server_ms = chunk_from_response(payload, STAGE)
        else:
            actions, server_ms = _mapped_chunk(payload, mapping)
        timing = timing_dict(rtt_ms, server_ms, retries, encode_ms)
        if mapping is None:
            timing["image_bytes"] = float(self._image_bytes)
        return actions, timing

    def close(self) -> None:
        self.session.close()

    # -- reflex serve -------------------------------------------------------------------------
    def _probe_health(self) -> dict[str, Any]:
        path = self.spec.health_path or "/health"
        status, body = self.session.get_json(path)
        if status != 200:
            raise error_from_status(status, body, f"GET {path}")
        if not isinstance(body, dict) or not isinstance(body.get("model"), dict):
            raise RemoteError(
                502, f"GET {path}: not a reflex serve health answer (set target.mapping for other servers)"
            )
        return body["model"]

    def _encode(self, obs: Observation) -> tuple[bytes, str]:
        if self.spec.mapping is not None:
            return _mapped_request(obs, self.spec.mapping), "application/json"
        frames = select_frames(obs, self.image_sizes, self.spec.image_size)
        images, self._image_bytes = encode_frames(frames, self.encoder)
        if self.spec.encoding == "msgpack":
            return packb(reflex_request(obs, images, self.spec.model)), "application/msgpack"
        as_text = {
            name: base64.b64encode(img).decode() if isinstance(img, bytes) else _b64_image(img, "png", 0)
            for name, img in images.items()
        }
        req = reflex_request(obs, as_text, self.spec.model)
        req["state"] = req["state"].tolist()
        return json.dumps(req).encode(), "application/json"

    @staticmethod
    def _decode(data: bytes, ctype: str) -> Any:
        try:
            if "msgpack" in ctype:
                return unpackb(data)
            return json.loads(data) if data else None
        except (WireFormatError, ValueError):
            return data[:300].decode(errors="replace")

    # -- other servers -----------------------------------------------------------------------
    def _connect_mapped(self, mapping: HttpMapping) -> TargetInfo:
        spec = self.spec
        if spec.health_path is not None:

            def probe() -> None:
                status, body = self.session.get_json(spec.health_path or "")
                if not 200 <= status < 300:
                    raise error_from_status(status, body, f"GET {spec.health_path}")

            wait_until_ready(probe, spec.connect_timeout_s, STAGE)
        else:
            wait_until_ready(self.session._connection, spec.connect_timeout_s, STAGE)
        return TargetInfo(
            kind="http",
            action_dim=mapping.action_dim,
            state_dim=None,  # a mapped server does not say: unknown, never a mismatch
            chunk_length=mapping.chunk_length,
            action_dt=mapping.action_dt_s,
            image_keys=tuple(mapping.images or mapping.image_inputs),
            details={"url": spec.url, "mapping": True},
        )


def _b64_image(image: np.ndarray, encoding: str, quality: int) -> str:
    if encoding == "jpeg":
        data = encode_jpeg(image, quality)
    else:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=1)
        data = buf.getvalue()
    return base64.b64encode(data).decode()


def _mapped_request(obs: Observation, mapping: HttpMapping) -> bytes:
    req: dict[str, Any] = dict(mapping.extra)
    req[mapping.state_field] = np.asarray(obs.state.position, dtype=np.float64).tolist()
    cameras = mapping.images or {name: name for name in (mapping.image_inputs or obs.images)}
    for camera, field in cameras.items():
        frame = obs.images.get(camera)
        if frame is None:
            raise RemoteError(422, f"{STAGE}: no frame from camera '{camera}' (target.mapping.images)")
        image = frame.image
        if camera in mapping.image_inputs:
            from reflex.wire.jpeg import resize_rgb

            image = resize_rgb(image, *mapping.image_inputs[camera])
        req[field] = _b64_image(image, mapping.image_encoding, mapping.jpeg_quality)
    if mapping.task_field:
        req[mapping.task_field] = obs.task
    if mapping.step_field:
        req[mapping.step_field] = obs.step
    return json.dumps(req).encode()


def _dig(payload: Any, path: str) -> Any:
    node = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise RemoteError(502, f"{STAGE}: response has no '{path}' (at '{part}'; found {keys})")
        node = node[part]
    return node


def _mapped_chunk(payload: Any, mapping: HttpMapping) -> tuple[np.ndarray, float | None]:
    actions, _ = chunk_from_response({"actions": _dig(payload, mapping.actions_path)}, STAGE)
    server_ms = None
    if mapping.server_ms_path:
        value = _dig(payload, mapping.server_ms_path)
        server_ms = float(value) if isinstance(value, (int, float)) else None
    return actions, server_ms

"""Another HTTP policy server's JSON: request fields and the response path come from ``target.mapping``."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np

from reflex.ports import Observation, TargetInfo
from reflex.targets.http.config import HttpMapping
from reflex.targets.remote.ports import Reply, Request, Transport
from reflex.wire.jpeg import encode_jpeg, resize_rgb
from reflex.wire.remote_client import RemoteError, chunk_from_response, error_from_status

STAGE = "target (mapped-json)"


class MappedJsonProtocol:
    name = "mapped-json"

    def __init__(self, mapping: HttpMapping) -> None:
        self.mapping = mapping

    def describe(self, greeting: Reply | None, transport: Transport) -> TargetInfo:
        if greeting is not None and not 200 <= greeting.status < 300:
            raise error_from_status(greeting.status, greeting.decoded(), f"{transport.name} {transport.url}")
        m = self.mapping
        return TargetInfo(
            kind=transport.name,
            action_dim=m.action_dim,
            state_dim=None,  # a mapped server does not say: unknown, never a mismatch
            chunk_length=m.chunk_length,
            action_dt=m.action_dt_s,
            image_keys=tuple(m.images or m.image_inputs),
            details={"url": transport.url, "protocol": self.name, "mapping": True},
        )

    def encode(self, obs: Observation) -> Request:
        m = self.mapping
        req: dict[str, Any] = dict(m.extra)
        req[m.state_field] = np.asarray(obs.state.position, dtype=np.float64).tolist()
        cameras = m.images or {name: name for name in (m.image_inputs or obs.images)}
        for camera, field in cameras.items():
            frame = obs.images.get(camera)
            if frame is None:
                raise RemoteError(422, f"{STAGE}: no frame from camera '{camera}' (target.mapping.images)")
            image = frame.image
            if camera in m.image_inputs:
                image = resize_rgb(image, *m.image_inputs[camera])
            req[field] = base64.b64encode(_encode_image(image, m.image_encoding, m.jpeg_quality)).decode()
        if m.task_field:
            req[m.task_field] = obs.task
        if m.step_field:
            req[m.step_field] = obs.step
        return Request([json.dumps(req).encode()], "application/json")

    def decode(self, reply: Reply, obs: Observation) -> tuple[np.ndarray, float | None]:
        payload = reply.decoded()
        actions, _ = chunk_from_response({"actions": _dig(payload, self.mapping.actions_path)}, STAGE)
        server_ms = None
        if self.mapping.server_ms_path:
            value = _dig(payload, self.mapping.server_ms_path)
            server_ms = float(value) if isinstance(value, (int, float)) else None
        return actions, server_ms


def _encode_image(image: np.ndarray, encoding: str, quality: int) -> bytes:
    if encoding == "jpeg":
        return encode_jpeg(image, quality)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _dig(payload: Any, path: str) -> Any:
    node = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise RemoteError(502, f"{STAGE}: response has no '{path}' (at '{part}'; found {keys})")
        node = node[part]
    return node

"""reflex serve's protocol: ``{state, images, task, step[, model]}`` in, ``{actions, server_timing}`` out.

The server describes its model (widths, chunk, cameras and their sizes) in ``/health`` and in
the WebSocket metadata frame, so nothing about shapes is configured on the robot side.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from reflex.ports import Observation, TargetInfo
from reflex.targets.remote.ports import Reply, Request, Transport
from reflex.wire.jpeg import JpegBudgetEncoder
from reflex.wire.msgpack_numpy import pack_parts
from reflex.wire.remote_client import (
    RemoteError,
    check_model_routing,
    chunk_from_response,
    encode_frames,
    error_from_status,
    model_image_sizes,
    reflex_request,
    select_frames,
    target_info,
)
from reflex.wire.remote_spec import RemoteTargetSpec

HINTS = {
    "http": "set target.mapping for other HTTP servers",
    "websocket": "an openpi server needs target.openpi (observation keys, action_dt_s)",
}


class ReflexProtocol:
    name = "reflex"

    def __init__(
        self,
        spec: RemoteTargetSpec,
        encoding: Literal["msgpack", "json"] = "msgpack",
        encoder: JpegBudgetEncoder | None = None,
        state_dtype: type = np.float64,
    ) -> None:
        self.spec = spec
        self.encoding = encoding
        if encoder is None and getattr(spec, "image_encoding", "raw") == "jpeg":
            encoder = spec.jpeg_encoder()  # type: ignore[attr-defined]
        self.encoder = encoder
        self.state_dtype = state_dtype
        self.image_sizes: dict[str, tuple[int, int]] = {}

    def describe(self, greeting: Reply | None, transport: Transport) -> TargetInfo:
        where = f"{transport.name} {transport.url}"
        if greeting is None:
            raise RemoteError(502, f"{where}: reflex serve greets with its model description; none came")
        body = greeting.decoded()
        if greeting.status != 200:
            raise error_from_status(greeting.status, body, where)
        model = body.get("model") if isinstance(body, Mapping) else None
        if not isinstance(model, Mapping):
            hint = HINTS.get(transport.name, "")
            raise RemoteError(502, f"{where}: not reflex serve (no model description){'; ' + hint if hint else ''}")
        check_model_routing(self.spec, model, f"target ({transport.name})")
        self.image_sizes = model_image_sizes(model)
        extra: dict[str, Any] = {"protocol": self.name}
        if transport.name == "http":
            extra["encoding"] = self.encoding
        if self.encoder is not None:
            extra["jpeg_budget_bytes"] = self.encoder.budget_bytes
        return target_info(transport.name, model, transport.url, extra)

    def encode(self, obs: Observation) -> Request:
        frames = select_frames(obs, self.image_sizes, self.spec.image_size)
        images, image_bytes = encode_frames(frames, self.encoder)
        request = reflex_request(obs, images, self.spec.model, self.state_dtype)
        if self.encoding == "msgpack":
            return Request(pack_parts(request), "application/msgpack", image_bytes)
        as_text = {
            name: base64.b64encode(img if isinstance(img, bytes) else _png(img)).decode()
            for name, img in images.items()
        }
        request["images"] = as_text
        request["state"] = request["state"].tolist()
        return Request([json.dumps(request).encode()], "application/json", image_bytes)

    def decode(self, reply: Reply, obs: Observation) -> tuple[np.ndarray, float | None]:
        return chunk_from_response(reply.decoded(), f"target ({self.name})")


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()

"""openpi's policy-server protocol: msgpack-numpy observation dicts in, ``{"actions": ...}`` out.

The server's metadata (``{}`` for most checkpoints, ``{"reset_pose": ...}`` for ALOHA) says
nothing about shapes, so the observation layout comes from ``target.openpi`` and every width the
server does not declare is left unknown (the first chunk is checked against the robot).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reflex.ports import Observation, TargetInfo
from reflex.targets.remote.ports import Reply, Request, Transport
from reflex.targets.websocket.config import KeyPath, OpenpiMapping, StatePart
from reflex.wire.jpeg import resize_rgb, resize_with_pad
from reflex.wire.msgpack_numpy import WireFormatError, pack_parts, unpackb
from reflex.wire.remote_client import RemoteError, chunk_from_response, error_from_status

STAGE = "target (openpi)"


class OpenpiProtocol:
    name = "openpi"

    def __init__(self, mapping: OpenpiMapping, image_size: tuple[int, int] | None) -> None:
        self.mapping = mapping
        self.image_size = image_size
        self.metadata: dict[str, Any] = {}

    def describe(self, greeting: Reply | None, transport: Transport) -> TargetInfo:
        where = f"{transport.name} {transport.url}"
        if greeting is None:
            raise RemoteError(502, f"{where}: no metadata frame")
        if greeting.status != 200:
            raise error_from_status(greeting.status, greeting.decoded(), f"{where}: instead of its metadata")
        try:
            meta = unpackb(greeting.body)
        except WireFormatError as exc:
            raise RemoteError(502, f"{where}: metadata frame is not msgpack: {exc}") from exc
        self.metadata = dict(meta) if isinstance(meta, Mapping) else {}
        horizon = self.mapping.chunk_length or self.metadata.get("action_horizon")
        return TargetInfo(
            kind=transport.name,
            action_dim=self.mapping.action_dim,
            state_dim=None,  # openpi does not say: unknown, never a mismatch
            chunk_length=horizon if isinstance(horizon, int) and horizon > 0 else None,
            action_dt=self.mapping.action_dt_s,
            image_keys=tuple(self.mapping.images),
            details={"url": transport.url, "protocol": self.name, "server_metadata": _printable(self.metadata)},
        )

    def encode(self, obs: Observation) -> Request:
        m = self.mapping
        out: dict[str, Any] = dict(m.extra)
        state = np.asarray(obs.state.position, dtype=np.float64 if m.state_dtype == "float64" else np.float32)
        parts = [p for p in m.state if isinstance(p, StatePart)] if isinstance(m.state, list) else []
        if parts:
            for part in parts:
                start, stop = part.joints
                if stop > state.shape[0]:
                    raise RemoteError(422, f"{STAGE}: target.openpi.state joints {[start, stop]} beyond the "
                                      f"robot's {state.shape[0]} joints")
                _put(out, part.key, np.ascontiguousarray(state[start:stop]))
        else:
            _put(out, m.state, state)  # type: ignore[arg-type]  # a key path, not parts
        image_bytes = 0
        for camera, path in m.images.items():
            frame = obs.images.get(camera)
            if frame is None:
                raise RemoteError(422, f"{STAGE}: no frame from camera '{camera}' (target.openpi.images)")
            image = frame.image
            if self.image_size is not None:
                resize = resize_with_pad if m.image_resize == "pad" else resize_rgb
                image = resize(image, *self.image_size)
            if m.image_layout == "chw":
                image = np.ascontiguousarray(image.transpose(2, 0, 1))
            _put(out, path, image)
            image_bytes += image.nbytes
        if m.prompt is not None:
            _put(out, m.prompt, obs.task)
        return Request(pack_parts(out), "application/msgpack", image_bytes)

    def decode(self, reply: Reply, obs: Observation) -> tuple[np.ndarray, float | None]:
        try:
            payload = unpackb(reply.body)
        except WireFormatError as exc:
            raise RemoteError(502, f"{STAGE}: response is not msgpack: {exc}") from exc
        actions, server_ms = chunk_from_response(payload, STAGE, self.mapping.actions_key)
        if self.mapping.velocity_columns is not None:
            actions = self._integrate(actions, obs)
        return actions, server_ms

    def _integrate(self, actions: np.ndarray, obs: Observation) -> np.ndarray:
        """Velocity columns -> position targets: the observed joints plus the running sum of
        velocity x dt (action k is for time k*dt after the observation)."""
        assert self.mapping.velocity_columns is not None
        start, stop = self.mapping.velocity_columns
        state = np.asarray(obs.state.position, dtype=np.float64)
        if stop > actions.shape[1] or stop > state.shape[0]:
            raise RemoteError(502, f"{STAGE}: velocity_columns {[start, stop]} beyond the chunk width "
                              f"{actions.shape[1]} or the robot's {state.shape[0]} joints")
        out = np.array(actions, dtype=np.float64)
        velocity = out[:, start:stop]
        before = np.cumsum(velocity, axis=0) - velocity  # sum of the velocities before action k
        out[:, start:stop] = state[None, start:stop] + before * self.mapping.action_dt_s
        return out


def _put(out: dict[str, Any], path: KeyPath, value: Any) -> None:
    keys = [path] if isinstance(path, str) else list(path)
    node = out
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _printable(meta: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in meta.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}

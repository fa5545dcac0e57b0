"""The remote target: readiness, retries, timing and chunk validation for every transport x protocol."""

from __future__ import annotations

import time

import numpy as np

from reflex.ports import Observation, TargetInfo
from reflex.runtime.target_fit import declared
from reflex.targets.remote.ports import Reply, Transport, WireProtocol
from reflex.wire.remote_client import (
    RemoteError,
    call_with_retry,
    error_from_status,
    timing_dict,
    wait_until_ready,
)
from reflex.wire.remote_spec import RemoteTargetSpec


class RemoteTarget:
    """The Target port over one ``transport`` speaking one ``protocol``."""

    def __init__(self, spec: RemoteTargetSpec, transport: Transport, protocol: WireProtocol) -> None:
        self.spec = spec
        self.transport = transport
        self.protocol = protocol
        self.stage = f"target ({transport.name})"
        self.info: TargetInfo | None = None
        self.last_request_id: str | None = None  # the server's id of the last answer (recorded with the chunk)

    def connect(self) -> TargetInfo:
        def ready() -> TargetInfo:
            return self.protocol.describe(self.transport.open(), self.transport)

        self.info = wait_until_ready(ready, self.spec.connect_timeout_s, self.stage)
        return self.info

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        request = self.protocol.encode(obs)
        encode_ms = (time.perf_counter() - t0) * 1e3
        where = f"{self.transport.name} {self.transport.url}"

        def attempt() -> tuple[float, Reply]:
            t_send = time.perf_counter()
            reply = self.transport.exchange(request, self.spec.timeout_s)
            rtt_ms = (time.perf_counter() - t_send) * 1e3
            if reply.status != 200:
                raise error_from_status(reply.status, reply.decoded(), where)
            return rtt_ms, reply

        (rtt_ms, reply), retries = call_with_retry(self.spec, attempt, where)
        actions, server_ms = self.protocol.decode(reply, obs)
        self.last_request_id = _request_id(reply)
        actions = self._checked(actions)
        timing = timing_dict(rtt_ms, server_ms, retries, encode_ms)
        if request.image_bytes is not None:
            timing["image_bytes"] = float(request.image_bytes)
        return actions, timing

    def close(self) -> None:
        self.transport.close()

    def _checked(self, actions: np.ndarray) -> np.ndarray:
        """A (horizon, width) float64 chunk, as wide as the server declared (if it did)."""
        chunk = np.asarray(actions, dtype=np.float64)
        if chunk.ndim == 1:
            chunk = chunk[None, :]
        if chunk.ndim != 2 or chunk.shape[0] == 0:
            raise RemoteError(502, f"{self.stage}: actions have shape {chunk.shape}, expected (horizon, dim)")
        width = declared(self.info.action_dim) if self.info is not None else None
        if width is not None and chunk.shape[1] != width:
            raise RemoteError(
                502, f"{self.stage}: chunk has {chunk.shape[1]} columns, the server declared action_dim {width}"
            )
        return chunk



def _request_id(reply: Reply) -> str | None:
    """``request_id`` of a reflex serve answer (any protocol), or None from other servers."""
    body = reply.decoded()
    value = body.get("request_id") if isinstance(body, dict) else None
    return value[:128] if isinstance(value, str) else None

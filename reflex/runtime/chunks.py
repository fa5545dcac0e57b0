"""Time-aligned execution of action chunks.

A chunk inferred from an observation captured at ``t_origin`` holds action ``k`` for
``t_origin + k * dt``. The control loop asks for the action *for now*: actions whose time passed
while inference ran are skipped (counted), never replayed late; between two chunk actions the
command is interpolated when the control rate is higher than the chunk rate.
"""

from __future__ import annotations

import math

import numpy as np

from reflex.ports import ActionChunk
from reflex.runtime.guard import GuardRejected, real_array


class ChunkInvalid(ValueError):
    """A chunk from the target has the wrong shape or non-finite values."""


def shaped_chunk(actions: np.ndarray, width: int) -> np.ndarray:
    """``actions`` as float64 (horizon, width); a single action counts as a chunk of one.

    The width is the robot's joint count: a target that does not declare its action width is
    checked here, on its first chunk (connect, before motors enable) and on every later one.
    """
    try:
        chunk = real_array(actions, "chunk")
    except GuardRejected as exc:
        raise ChunkInvalid(str(exc)) from None
    if chunk.ndim == 1:
        chunk = chunk[None, :]
    if chunk.ndim != 2 or chunk.shape[0] < 1 or chunk.shape[1] != width:
        raise ChunkInvalid(f"chunk has shape {chunk.shape}, expected (horizon, {width}): the robot has {width} joints")
    return chunk


def validate_chunk(actions: np.ndarray, width: int) -> np.ndarray:
    chunk = shaped_chunk(actions, width)
    if not np.all(np.isfinite(chunk)):
        raise ChunkInvalid("chunk contains NaN or Inf")
    return chunk


class ChunkSchedule:
    """The chunk being executed and when the next one must be requested."""

    def __init__(self, interpolate: bool, prefetch_margin_s: float) -> None:
        self.interpolate = interpolate
        self.prefetch_margin_s = prefetch_margin_s
        self.current: ActionChunk | None = None
        self.skipped_actions = 0
        self.chunks_adopted = 0
        self._latency_estimate: float | None = None

    def adopt(self, chunk: ActionChunk) -> int:
        """Switch to a newer chunk; returns how many of its actions were already in the past."""
        latency = chunk.t_received - chunk.t_requested
        est = self._latency_estimate
        # Track the slow side: a jump up is taken at once, a drop only slowly.
        self._latency_estimate = latency if est is None or latency > est else 0.9 * est + 0.1 * latency
        late = max(0, math.ceil((chunk.t_received - chunk.t_origin) / chunk.dt - 1e-9))
        late = min(late, chunk.horizon)
        self.skipped_actions += late
        self.current = chunk
        self.chunks_adopted += 1
        return late

    def action_at(self, t: float) -> tuple[np.ndarray, float] | None:
        """The action for time ``t`` and its fractional index, or None when the chunk ran out."""
        chunk = self.current
        if chunk is None:
            return None
        position = max(0.0, (t - chunk.t_origin) / chunk.dt)
        last = chunk.horizon - 1
        if position > last + 0.5:
            return None
        if not self.interpolate or position >= last:
            return chunk.actions[min(last, round(position))], position
        i = int(position)
        frac = position - i
        action = chunk.actions[i] if frac == 0.0 else (1 - frac) * chunk.actions[i] + frac * chunk.actions[i + 1]
        return action, position

    def needs_next(self, t: float) -> bool:
        """Whether a request made now is due so its answer lands before this chunk runs out."""
        chunk = self.current
        if chunk is None:
            return True
        lead = (self._latency_estimate or 0.0) * 1.5 + self.prefetch_margin_s
        return chunk.t_end() - t <= lead

    @property
    def latency_estimate_s(self) -> float | None:
        return self._latency_estimate

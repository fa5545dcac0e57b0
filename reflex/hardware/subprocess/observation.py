"""Turning a validated observation message into a state sample and camera frames.

The schema checks types and keys; this checks what depends on the session: the declared joint
names and dimension, finiteness, the clock of the timestamps, and the declared cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reflex.hardware.subprocess.contract import CameraDeclaration, Observation
from reflex.hardware.subprocess.errors import ContractViolation
from reflex.hardware.subprocess.images import decode_image
from reflex.ports import StateSample

FUTURE_TOLERANCE_S = 0.05  # a capture stamped later than "now" by more than this is a clock mix-up


@dataclass
class DecodedObservation:
    state: StateSample
    images: dict[str, tuple[np.ndarray, float]]  # name -> (RGB image, capture time)
    task: str | None


class ObservationDecoder:
    def __init__(self, names: tuple[str, ...], cameras: dict[str, CameraDeclaration], cwd: Path) -> None:
        self.names = names
        self.dim = len(names)
        self.index = {n: i for i, n in enumerate(names)}
        self.inline = {n: c for n, c in cameras.items() if c.source == "inline"}
        self.shm = sorted(n for n, c in cameras.items() if c.source == "shm")
        self.cwd = cwd

    def decode(self, msg: Observation, t_request: float, t_now: float) -> DecodedObservation:
        position = self._vector(msg.state, "state")
        velocity = None if msg.velocity is None else self._vector(msg.velocity, "velocity")
        effort = None if msg.effort is None else self._vector(msg.effort, "effort")
        t_capture = t_request if msg.timestamp is None else self._timestamp(msg.timestamp, "timestamp", t_now)
        images: dict[str, tuple[np.ndarray, float]] = {}
        for name, payload in msg.images.items():
            camera = self.inline.get(name)
            if camera is None:
                raise ContractViolation(self._unknown_camera(name))
            image = decode_image(name, payload, camera.width, camera.height, self.cwd)
            t_image = (
                t_capture
                if payload.timestamp is None
                else self._timestamp(payload.timestamp, f"images.{name}.timestamp", t_now)
            )
            images[name] = (image, t_image)
        extras: dict[str, Any] = dict(msg.extras)
        if msg.task is not None:
            extras["task"] = msg.task
        state = StateSample(position=position, t_capture=t_capture, velocity=velocity, effort=effort,
                            extras=extras)
        return DecodedObservation(state=state, images=images, task=msg.task)

    def _vector(self, value: list[float] | dict[str, float], key: str) -> np.ndarray:
        if isinstance(value, dict):
            missing = [n for n in self.names if n not in value]
            unexpected = [n for n in value if n not in self.index]
            if missing or unexpected:
                parts = []
                if missing:
                    parts.append(f"missing joint(s) {missing}")
                if unexpected:
                    parts.append(f"unexpected joint(s) {unexpected}")
                raise ContractViolation(f"{key}: {'; '.join(parts)} (declared: {list(self.names)})")
            array = np.array([value[n] for n in self.names], dtype=np.float64)
        else:
            if len(value) != self.dim:
                raise ContractViolation(
                    f"{key} has {len(value)} values, expected {self.dim} (declared joints: "
                    f"{', '.join(self.names)})"
                )
            array = np.array(value, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            bad = [self.names[i] for i in np.flatnonzero(~np.isfinite(array))]
            raise ContractViolation(f"{key} is not finite at {', '.join(bad)}")
        return array

    def _timestamp(self, value: float, key: str, t_now: float) -> float:
        if value > t_now + FUTURE_TOLERANCE_S:
            hint = " (wall-clock time? use CLOCK_MONOTONIC, Python time.monotonic())" if value > 1e8 else ""
            raise ContractViolation(f"{key} {value:.3f} is {value - t_now:.3f} s in the future{hint}")
        if value < 0:
            raise ContractViolation(f"{key} {value} is negative; expected CLOCK_MONOTONIC seconds")
        return float(value)

    def _unknown_camera(self, name: str) -> str:
        if name in self.shm:
            return f"images.{name}: camera '{name}' is declared with source shm; do not send it inline"
        declared = sorted(self.inline) or "none"
        return f"images.{name}: camera '{name}' was not declared (declared inline cameras: {declared})"

"""The latest reading of every motor on a bus: decoded, unwrapped, readable from any thread."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reflex.can.codec import decode_feedback
from reflex.can.faults import MotorStatus
from reflex.can.motors import MotorType


@dataclass
class MotorReading:
    position: float = math.nan  # unwrapped, motor-side rad
    velocity: float = math.nan
    torque: float = math.nan
    t_mos: int = 0
    t_rotor: int = 0
    status: MotorStatus | int = MotorStatus.DISABLED
    t_rx: float = math.nan  # monotonic time the reply arrived


@dataclass(frozen=True)
class ChainState:
    """A consistent copy of the latest readings of every motor."""

    position: np.ndarray
    velocity: np.ndarray
    torque: np.ndarray
    t_mos: np.ndarray
    t_rotor: np.ndarray
    status: tuple[MotorStatus | int, ...]
    t_rx: np.ndarray
    cycle: int
    mode: str

    @property
    def t_capture(self) -> float:
        """The oldest reply time: the state is at least this fresh."""
        return float(np.min(self.t_rx))


class Readings:
    """Feedback frames in, consistent snapshots out. Positions wrap at +-PMAX on the wire and
    are kept continuous here."""

    def __init__(self, motors: Sequence[MotorType]) -> None:
        self._types = list(motors)
        self._readings = [MotorReading() for _ in motors]
        self._unwrap = [0.0] * len(motors)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._readings)

    def __getitem__(self, index: int) -> MotorReading:
        return self._readings[index]

    def absorb(self, index: int, data: bytes, t_rx: float) -> None:
        mt = self._types[index]
        fb = decode_feedback(data, mt)
        with self._lock:
            r = self._readings[index]
            position = fb.position + self._unwrap[index]
            if math.isfinite(r.position) and abs(position - r.position) > mt.pmax:
                # the reading wrapped at +-PMAX: keep the position continuous
                self._unwrap[index] -= math.copysign(2 * mt.pmax, position - r.position)
                position = fb.position + self._unwrap[index]
            r.position, r.velocity, r.torque = position, fb.velocity, fb.torque
            r.t_mos, r.t_rotor, r.status, r.t_rx = fb.t_mos, fb.t_rotor, fb.status, t_rx

    def positions(self) -> np.ndarray:
        with self._lock:
            return np.array([r.position for r in self._readings])

    def snapshot(self, cycle: int, mode: str) -> ChainState:
        with self._lock:
            r = self._readings
            return ChainState(
                position=np.array([x.position for x in r]),
                velocity=np.array([x.velocity for x in r]),
                torque=np.array([x.torque for x in r]),
                t_mos=np.array([x.t_mos for x in r]),
                t_rotor=np.array([x.t_rotor for x in r]),
                status=tuple(x.status for x in r),
                t_rx=np.array([x.t_rx for x in r]),
                cycle=cycle,
                mode=mode,
            )

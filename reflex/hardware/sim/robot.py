"""A simulated robot (bimanual YAM or one Franka arm): first-order joint dynamics with a speed limit and hard stops."""

from __future__ import annotations

import threading
import time

import numpy as np

from reflex.hardware.sim.config import SimConfig, sim_home, sim_layout
from reflex.ports import StateSample


class SimulatedFault(RuntimeError):
    """Raised by an injected fault."""


class SimRobot:
    """Integrates lazily: the state advances to 'now' whenever it is read or commanded."""

    can_apply = True
    simulated = True  # its world stands still while its process is not run (see runtime.stalls)

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.layout = sim_layout(config.robot)
        pose = sim_home(config.robot) if config.initial_pose is None else np.array(config.initial_pose)
        self._q = np.clip(pose.astype(float), self.layout.lower, self.layout.upper)
        self._command: np.ndarray | None = None
        self._t = time.monotonic()
        self._lock = threading.Lock()
        self._reads = 0
        self._applies = 0
        self.connected = False
        self.enabled = False
        self.safe_stops: list[str] = []
        self.apply_calls = 0

    # -- port ------------------------------------------------------------------------------
    def connect(self) -> None:
        if self.config.faults.connect_delay_s:
            time.sleep(self.config.faults.connect_delay_s)
        self.connected = True

    def enable(self) -> None:
        if not self.connected:
            raise RuntimeError("enable before connect")
        with self._lock:
            self._advance(time.monotonic())
            self._command = self._q.copy()  # hold the measured pose: never jump on enable
            self.enabled = True

    def read_state(self) -> StateSample:
        fault_step = self.config.faults.observe_at_step
        if fault_step is not None and self._reads == fault_step:
            self._reads += 1
            raise SimulatedFault(f"injected observe fault at read {fault_step}")
        self._reads += 1
        now = time.monotonic()
        with self._lock:
            self._advance(now)
            return StateSample(position=self._q.copy(), t_capture=now)

    def apply(self, action: np.ndarray, step: int) -> None:
        self.apply_calls += 1
        faults = self.config.faults
        if faults.stall_at_step is not None and self._applies == faults.stall_at_step:
            time.sleep(faults.stall_s)  # the runner is stuck in this call
        fault_step = faults.apply_at_step
        if fault_step is not None and self._applies == fault_step:
            self._applies += 1
            raise SimulatedFault(f"injected apply fault at apply {fault_step}")
        self._applies += 1
        if not self.enabled:
            raise RuntimeError("apply on a robot that is not enabled")
        with self._lock:
            self._advance(time.monotonic())
            self._command = np.clip(action, self.layout.lower, self.layout.upper)

    def safe_stop(self, reason: str) -> None:
        with self._lock:
            self._advance(time.monotonic())
            self._command = None  # hold where it is, torque off
            self.enabled = False
        self.safe_stops.append(reason)
        if self.config.faults.safe_stop_fails:
            raise SimulatedFault("injected safe-stop failure")

    def close(self) -> None:
        with self._lock:
            self._command = None
            self.enabled = False
        self.connected = False

    # -- sim -------------------------------------------------------------------------------
    def positions(self) -> np.ndarray:
        """Current pose without counting as an observation (the sim camera uses it)."""
        with self._lock:
            self._advance(time.monotonic())
            return self._q.copy()

    def _advance(self, now: float) -> None:
        dt = now - self._t
        self._t = now
        if dt <= 0 or self._command is None or not self.enabled:
            return
        alpha = 1.0 - np.exp(-dt / self.config.time_constant_s)
        step = (self._command - self._q) * alpha
        limit = self.config.max_velocity * dt
        self._q = np.clip(self._q + np.clip(step, -limit, limit), self.layout.lower, self.layout.upper)

"""The ``yam_bimanual`` connector: two :class:`YamArmDriver` behind the Hardware port.

Safety contract (each point has a test in tests/test_yam_*.py):

* ``connect`` is read-only: refresh polls and register reads, never enable or MIT frames, so a
  ``dry_run`` session cannot make torque. Silent motors and mis-scaled motors refuse here.
* ``enable`` (apply_actions only, after the target's first valid chunk) refuses when any motor
  of either arm is silent, faulted or outside its limits, naming arm and joint; it writes the
  configured watchdog to every motor and reads it back, then holds the measured pose: the first
  target is reached from there by slewing, never by a jump. ``powered`` says an enable frame
  went out (a bring-up that fails after it has already stopped what it powered).
* a fault, a missed-reply budget exceeded or a silent runner on either arm starts a safe stop
  of both arms on the next bus cycle (``safety.stop``: hold, damp or disable), then disable.
  Nothing re-enables.
* a motor that never confirms the disable (silent, replies lost, bus-off) makes the stop fail,
  naming it and when its watchdog expires (``left_to_watchdog``).
* ``close`` always leaves enabled motors disabled.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import numpy as np

from reflex.can.faults import MotorError
from reflex.can.stop import SUPPORT_STILL_RAD_S
from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.hardware.yam.arm_driver import YamArmDriver, calibrate_grippers
from reflex.hardware.yam.config import YamBimanualConfig, YamBimanualSpec
from reflex.hardware.yam_layout import SIDES
from reflex.ports import StateSample

log = logging.getLogger(__name__)


class HardwareFault(RuntimeError):
    """The robot stopped itself (motor fault, lost replies, silent runner)."""


class YamBimanual:
    can_apply = True

    def __init__(self, config: YamBimanualConfig, ctx: BuildContext) -> None:
        self.config = config
        self.ctx = ctx
        self.layout = YamBimanualSpec(config=config).layout()
        self._fault_lock = threading.Lock()
        self.faults: list[str] = []
        self.arms = [YamArmDriver(side, config, ctx.config_dir, self._on_fault) for side in SIDES]
        self._split = np.cumsum([len(a.motors) for a in self.arms])[:-1]
        self.enabled = False
        self.powered = False  # an enable frame went out (a report after that must say motors were live)
        self.stop_reasons: list[str] = []
        self.unconfirmed: list[str] = []
        # motors a stop could not confirm disabled, with their watchdog's expiry (the session
        # result's leftToWatchdog; see reflex.can.unconfirmed)
        self.left_to_watchdog: list[dict[str, Any]] = []
        # a stop that failed inside enable() (bring-up failed or interrupted): the caller's next
        # safe_stop reports it, so a failed stop is never hidden behind the bring-up error
        self._unreported_stop_failure: str | None = None

    simulated = False  # a real robot never is (see runtime.stalls; reflex.hardware.yam.sim)

    # ------------------------------------------------------------------ port
    def connect(self) -> None:
        try:
            for arm in self.arms:
                arm.connect(self.ctx.control_rate_hz, self.ctx.stop, self.ctx.signals)
        except BaseException:
            self.close()
            raise

    def enable(self) -> None:
        if self.ctx.mode != "apply_actions":
            raise RuntimeError(f"yam_bimanual: enable() in mode {self.ctx.mode}; torque is for apply_actions only")
        problems = [p for arm in self.arms for p in arm.check_enable()]
        if problems:
            raise SetupError("hardware.enable", "refusing to enable: " + "; ".join(problems))
        if self.ctx.max_delta is not None:  # the bus-side band never exceeds the guard's per-step delta
            delta = np.broadcast_to(np.asarray(self.ctx.max_delta, dtype=float), (self.layout.dim,))
            for arm, part in zip(self.arms, np.split(delta, self._split), strict=True):
                arm.step_band = [float(x) for x in part]
        try:
            for arm in self.arms:
                arm.ensure_watchdog()
            for arm in self.arms:
                self.powered = True
                arm.enable(self.ctx.control_rate_hz)
                for other in self.arms:
                    other.touch()  # bringing up the next arm is not a silent runner
            self.enabled = True
            calibrate_grippers(self.arms)
            for arm in self.arms:
                arm.touch()
        except MotorError as exc:
            self._stop_after_bring_up(f"bring-up failed: {exc}")
            raise SetupError("hardware.enable", str(exc)) from exc
        except BaseException:
            self._stop_after_bring_up("bring-up interrupted")
            raise
        if self.faults:
            raise SetupError("hardware.enable", self.faults[0])

    def read_state(self) -> StateSample:
        self._raise_if_faulted()
        states = []
        for arm in self.arms:
            arm.touch()
            states.append(arm.state())
        q = np.concatenate([arm.joints(st) for arm, st in zip(self.arms, states, strict=True)])
        v = np.concatenate([arm.joint_velocity(st) for arm, st in zip(self.arms, states, strict=True)])
        effort = np.concatenate([st.torque for st in states])
        t_capture = min(st.t_capture for st in states)
        extras = {
            "status": [int(s) for st in states for s in st.status],
            "temp_mos": [int(x) for st in states for x in st.t_mos],
            "temp_rotor": [int(x) for st in states for x in st.t_rotor],
            "gripper_calibrated": {a.side: a.gripper_calibrated for a in self.arms if a.gripper is not None},
        }
        return StateSample(position=q, t_capture=t_capture, velocity=v, effort=effort, extras=extras)

    def apply(self, action: np.ndarray, step: int) -> None:
        if not self.enabled:
            raise RuntimeError("yam_bimanual: apply() before enable()")
        self._raise_if_faulted()
        action = np.asarray(action, dtype=float)
        if action.shape != (self.layout.dim,) or not np.all(np.isfinite(action)):
            raise ValueError(f"yam_bimanual: action must be {self.layout.dim} finite numbers, got {action.shape}")
        clipped = np.clip(action, self.layout.lower, self.layout.upper)
        for arm, part in zip(self.arms, np.split(clipped, self._split), strict=True):
            arm.set_targets(part)

    def go_home(self) -> None:
        """Drive to the home pose at ``home_speed`` (the runner calls this on a clean stop when
        safety.home_on_stop is set; never in dry_run). The chains shape it like policy motion
        (speed, acceleration, limits, error band). Bounded by ``home_timeout_s``; the next
        Ctrl-C / SIGTERM stops it on each arm's own next bus cycle, into the safe stop. Raises
        on an interruption, a fault, the time bound, or if home is not reached."""
        if self.ctx.mode != "apply_actions" or not self.enabled:
            return
        home = self._home_pose()
        start = self.read_state().position
        span = float(np.max(np.abs(home - start)))  # grippers too: they ramp at the same speed
        duration = max(span / self.config.home_speed, 0.1)
        period = 1.0 / self.ctx.control_rate_hz
        t0 = time.monotonic()
        deadline = t0 + self.config.home_timeout_s
        for arm in self.arms:
            arm.arm_interrupt(True)
        try:
            while True:
                s = min((time.monotonic() - t0) / duration, 1.0)
                self._home_step(start + s * (home - start), deadline)
                if s >= 1.0:
                    state = self.read_state()
                    error_all = np.abs(state.position - home)
                    error = error_all[self._arm_joints]
                    # arrived means at rest there: the stop that follows holds the pose it finds
                    # (a joint still slewing would be held short of home) and learns each joint's
                    # load at rest (reflex.can.stop), so it must find the arm settled at home
                    settled = state.velocity is None or float(
                        np.max(np.abs(state.velocity[self._arm_joints]))
                    ) < SUPPORT_STILL_RAD_S
                    if float(np.max(error_all)) < 0.05 and settled:
                        return
                    if time.monotonic() > t0 + duration + 2.0:
                        if float(np.max(error)) < 0.05:
                            return  # a gripper may be held by what it grasps: only the arms must arrive
                        raise HardwareFault(f"home not reached: largest joint error {float(np.max(error)):.3f} rad")
                time.sleep(period)
        finally:
            for arm in self.arms:
                arm.arm_interrupt(False)

    def _home_step(self, pose: np.ndarray, deadline: float) -> None:
        stopped = [a for a in self.arms if not a.controlling]
        if stopped:
            sides = ", ".join(a.side for a in stopped)
            reason = next((a.stop_reason for a in stopped if a.stop_reason), None)
            raise HardwareFault(f"homing stopped ({sides} arm): {reason or 'safe stop'}")
        if time.monotonic() > deadline:
            raise HardwareFault(f"homing took longer than home_timeout_s = {self.config.home_timeout_s:g} s")
        self.apply(pose, step=-1)

    def _home_pose(self) -> np.ndarray:
        if self.config.home_pose is not None:
            return np.clip(np.array(self.config.home_pose, dtype=float), self.layout.lower, self.layout.upper)
        pose = np.zeros(self.layout.dim)
        pose[[i for i, n in enumerate(self.layout.names) if n.endswith("gripper")]] = 1.0
        return np.clip(pose, self.layout.lower, self.layout.upper)

    @property
    def _arm_joints(self) -> list[int]:
        return [i for i, n in enumerate(self.layout.names) if not n.endswith("gripper")]

    def safe_stop(self, reason: str) -> None:
        """Stop both arms (see :meth:`_stop_all`); raises if this stop, or the one a failed
        bring-up already ran, failed."""
        self.stop_reasons.append(reason)
        failures = []
        if self._unreported_stop_failure is not None:
            failures.append(self._unreported_stop_failure)
            self._unreported_stop_failure = None
        try:
            self._stop_all(reason)
        except HardwareFault as exc:
            failures.append(str(exc))
        if failures:
            raise HardwareFault("; ".join(failures))

    def close(self) -> None:
        try:
            if self.enabled or any(arm.enabled for arm in self.arms):
                self._stop_all("session closed")
        finally:
            for arm in self.arms:
                with contextlib.suppress(Exception):
                    arm.close()

    # ------------------------------------------------------------------ helpers
    def bus_stats(self) -> dict[str, dict[str, float | int | None]]:
        return {a.side: st for a in self.arms if (st := a.bus_stats()) is not None}

    def _on_fault(self, message: str) -> None:
        """Called on a chain thread: stop the other arm too, its first stop frames sent from
        here if its own thread is between cycles."""
        with self._fault_lock:
            self.faults.append(message)
        for arm in self.arms:
            arm.request_stop(message, immediate=True)

    def _raise_if_faulted(self) -> None:
        if self.faults:
            raise HardwareFault(f"yam_bimanual safe-stopped: {self.faults[0]}")

    def _stop_after_bring_up(self, reason: str) -> None:
        """Stop what a failed bring-up powered, at once; the bring-up's own error stays the one
        raised, a failure of this stop is kept for the next :meth:`safe_stop`."""
        try:
            self._stop_all(reason)
        except Exception as exc:
            text = str(exc) if isinstance(exc, HardwareFault) else f"safe stop failed: {type(exc).__name__}: {exc}"
            self._unreported_stop_failure = text

    def _stop_all(self, reason: str) -> None:
        """Both arms' stop plans in parallel (hold / damp / disable, see reflex.can.stop); raise
        if a motor stays enabled. A further Ctrl-C while waiting skips to the disable."""
        live = [a for a in self.arms if a.live]
        for arm in live:
            arm.request_stop(reason)
        failed: list[str] = []
        for arm in live:
            failed.extend(arm.finish_stop(arm.stop_duration_s + 2.0))
        self.unconfirmed = [w for a in live for w in a.unconfirmed]
        for arm in live:
            self.left_to_watchdog.extend(arm.left_to_watchdog)
            arm.left_to_watchdog = []
        if self.unconfirmed:
            log.warning("yam_bimanual: no answer to disable from %s (left to the motor watchdog)", self.unconfirmed)
        self.enabled = False
        for arm in self.arms:
            arm.enabled = False
        if failed:
            raise HardwareFault(f"safe stop failed, check the robot: {'; '.join(failed)}")

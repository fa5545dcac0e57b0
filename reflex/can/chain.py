"""The motor chain driver: one CAN bus, several Damiao motors, one thread, four modes.

This module is the mode machine and the thread; the parts it drives each live in their own
module: :mod:`reflex.can.wire` (one exchange of frames and replies), :mod:`reflex.can.readings`
(the state cache), :mod:`reflex.can.operations` (one-shot bring-up and disable operations),
:mod:`reflex.can.shaping` (the pure control law), :mod:`reflex.can.stop`
(what a safe stop sends) and :mod:`reflex.can.calls` (blocking operations run on the thread).

Modes of the thread:

* ``monitor``: read-only. Polls with the register-service *refresh* frame (0x7FF, CMD 0xCC),
  which returns a feedback frame and changes nothing. No enable, no MIT frame, no torque. A
  motor that stops answering here is no fault (nothing is live): its reading just grows old,
  which the runner sees as stale state.
* ``control``: MIT frames towards the latest target, shaped (speed, acceleration, limits, error
  band). Any reply that is not "enabled", a motor without a reply for longer than the reply
  budget (a time), a frame the bus refuses, a silent runner or an armed interrupt starts a safe
  stop on the same cycle.
* ``stopping``: the :class:`~reflex.can.stop.StopPlan` (hold / damp / ramp), then disable every
  motor and fall back to ``monitor``. Nothing ever re-enables a motor on its own.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

import can
import numpy as np
from numpy.typing import ArrayLike

from reflex.can.bus import check_bus_load
from reflex.can.calls import OwnerCalls
from reflex.can.codec import (
    Feedback,
    MitCommand,
    pack_mit,
    refresh_request,
)
from reflex.can.faults import MotorError, MotorStatus, is_fault, status_text
from reflex.can.operations import Operations
from reflex.can.readings import ChainState, MotorReading
from reflex.can.registers import REGISTER_SERVICE_ID, RegisterCmd
from reflex.can.shaping import JointControl, Measured, Shaped, feedforward_velocity, shape
from reflex.can.stop import SUPPORT_STILL_RAD_S, SUPPORT_TAU_S, StopPlan, spring_torque, support_torque
from reflex.can.unconfirmed import Unconfirmed
from reflex.can.wire import ChainMotor, ChainStats, ChainTiming, Replies, Request, Strategy, Wire

__all__ = [
    "ChainMotor",
    "ChainState",
    "ChainStats",
    "ChainTiming",
    "JointControl",
    "MotorChain",
    "MotorReading",
    "StopPlan",
]

Mode = Literal["idle", "monitor", "control", "stopping"]
IMMEDIATE_WAIT_S = 0.005  # how long another arm's fault waits for this bus to send stop frames


class MotorChain:
    """Drives the motors of one bus. Thread-safe: every bus access happens under one lock,
    and once the thread runs, blocking operations are executed on it between cycles."""

    def __init__(
        self,
        bus: can.BusABC,
        motors: Sequence[ChainMotor],
        *,
        name: str = "chain",
        rate_hz: float = 250.0,
        timing: ChainTiming | None = None,
        strategy: Strategy = "pipelined",
        on_fault: Callable[[str], None] | None = None,
        stop_plan: StopPlan | None = None,
    ) -> None:
        if not motors:
            raise ValueError(f"{name}: a chain needs at least one motor")
        ids = [m.reply_id for m in motors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name}: two motors reply on the same id")
        self.timing = timing or ChainTiming()
        if rate_hz > 0:
            check_bus_load(rate_hz, len(motors), self.timing.bitrate)
        self.motors = list(motors)
        self.name = name
        self.rate_hz = rate_hz
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.002  # shaping step (nominal, not measured)
        self.on_fault = on_fault
        self.plan = stop_plan or StopPlan()
        self.wire = Wire(bus, self.motors, self.timing, strategy)
        self.readings = self.wire.readings
        self.ops = Operations(self.wire)
        self.calls = OwnerCalls(name)
        self._state_lock = threading.Lock()
        self._stop_thread = threading.Event()
        self._thread: threading.Thread | None = None
        self._mode: Mode = "idle"
        n = len(self.motors)
        self._controls: list[JointControl] = []
        self._target: np.ndarray = np.zeros(n)
        self._torque_ff: np.ndarray = np.zeros(n)
        self._shaped: list[Shaped] = [Shaped(0.0)] * n
        self._sent_ff: list[float] = [0.0] * n
        self._spring: list[float] = [0.0] * n  # averaged spring torque per joint (support on stop)
        self._interp_s = 0.0
        self._last_reply = [time.monotonic()] * n
        self._last_control_t: float | None = None
        # the runner's silence is measured on this thread's own clock of control cycles, which
        # does not run while the host stalls this process (see _control_cycle): a runner that is
        # frozen while this thread runs is stopped on time; a process the host did not run is
        # not a silent runner, just as it is no silent motor
        self._watched_s = 0.0
        self._heartbeat = 0.0
        self.runner_timeout_s: float | None = None
        # interrupts (Ctrl-C / SIGTERM count): an armed chain stops on the next one, a stopping
        # chain cuts its stop short (straight to disable) on the next one
        self.interrupts: Callable[[], int] | None = None
        self._armed_at: int | None = None
        self._stop_mark = 0
        self._cut = False
        self.fault: str | None = None
        self.stop_reason: str | None = None
        self._stop_started = 0.0
        self._hold: np.ndarray = np.zeros(n)
        self._support: np.ndarray = np.zeros(n)
        self.stopped = threading.Event()
        self.stopped.set()
        self.disabled_ok = True
        self.still_enabled: list[str] = []
        self.unconfirmed: list[Unconfirmed] = []

    # ================================================================== blocking operations
    def refresh(self) -> list[Feedback]:
        """Read every motor once without changing anything; raises naming a silent motor."""
        return self.calls.call(self.ops.refresh)

    def read_register(self, index: int, rid: int) -> float | int:
        return self.calls.call(lambda: self.ops.register(index, RegisterCmd.READ, rid))

    def write_register(self, index: int, rid: int, value: float | int) -> float | int:
        return self.calls.call(lambda: self.ops.write_register(index, rid, value))

    def enable_all(self) -> list[Feedback]:
        """FC to every motor; each must answer 'enabled'. Used only by an explicit bring-up."""
        return self.calls.call(self.ops.enable_all)

    def disable_all(self) -> list[str]:
        """FD to every motor, with retries; returns the motors that still answer 'enabled'.
        A silent motor cannot confirm and is listed in :attr:`unconfirmed` (its own watchdog
        damps it)."""
        return self.calls.call(self._disable_confirmed)

    def clear_errors(self, indices: Sequence[int]) -> None:
        """FB to the given motors (a latched fault's first step back; never done on a fault)."""
        self.calls.call(lambda: self.ops.clear_errors(indices))

    # ================================================================== the thread
    def start(self) -> None:
        """Start the thread in monitor mode (read-only polling)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: the chain thread is already running")
        self._mode = "monitor"
        self.wire.stats = ChainStats()
        self._last_reply = [time.monotonic()] * len(self.motors)
        self._stop_thread.clear()
        self._thread = threading.Thread(target=self._loop, name=f"can-{self.name}", daemon=True)
        self.calls.owner = self._thread
        self._thread.start()

    def start_control(self, controls: Sequence[JointControl], interp_s: float) -> None:
        """Switch to control mode holding the measured pose. Motors must already be enabled."""
        self._check_controls(controls)

        def run() -> None:
            measured = self.readings.positions()
            if not np.all(np.isfinite(measured)):
                raise MotorError(self.name, "control needs a fresh reading of every motor")
            self._controls = list(controls)
            self._target = measured.copy()
            self._shaped = [Shaped(float(p)) for p in measured]
            self._torque_ff = np.zeros(len(self.motors))
            self._spring = [0.0] * len(self.motors)
            self._interp_s = interp_s
            self._heartbeat = self._watched_s
            self._last_reply = [time.monotonic()] * len(self.motors)
            self._last_control_t = None
            self.fault = None
            self.stopped.clear()
            self._mode = "control"

        self.calls.call(run)

    def set_targets(self, positions: ArrayLike, torques: ArrayLike | None = None) -> None:
        """Latest target wins; the thread shapes towards it. Ignored unless in control mode."""
        target = np.asarray(positions, dtype=float)
        if target.shape != (len(self.motors),) or not np.all(np.isfinite(target)):
            raise ValueError(f"{self.name}: targets must be {len(self.motors)} finite numbers")
        with self._state_lock:
            self._target = target.copy()
            if torques is not None:
                self._torque_ff = np.asarray(torques, dtype=float).copy()
            self._heartbeat = self._watched_s

    def set_controls(self, controls: Sequence[JointControl]) -> None:
        """Change gains/limits in control mode; a changed joint restarts from its measured position."""
        self._check_controls(controls)

        def run() -> None:
            for i, (old, new) in enumerate(zip(self._controls, controls, strict=True)):
                if old != new:
                    self._shaped[i] = Shaped(self.readings[i].position)
            self._controls = list(controls)

        self.calls.call(run)

    def targets(self) -> np.ndarray:
        with self._state_lock:
            return self._target.copy()

    def measured(self) -> np.ndarray:
        return self.readings.positions()

    def touch(self) -> None:
        """The runner is alive (it read state or sent an action)."""
        self._heartbeat = self._watched_s

    def arm_interrupt(self) -> None:
        """Stop on the next interrupt (signal) counted by :attr:`interrupts`, on this chain's
        own next cycle: used while homing, so a second Ctrl-C needs no other thread to act."""
        if self.interrupts is not None:
            self._armed_at = self.interrupts()

    def disarm_interrupt(self) -> None:
        self._armed_at = None

    def request_stop(self, reason: str, immediate: bool = False) -> None:
        """Start a safe stop on the next cycle (no-op unless motors are being controlled).
        ``immediate``: if this chain's thread is between cycles, send the first stop frames now,
        on the caller's thread (another arm's fault must not wait for this thread to be
        scheduled)."""
        with self._state_lock:
            if self._mode != "control":
                return
            self._begin_stop(reason)
        # mid-cycle, this chain's thread holds the bus for a few ms at most: wait that long
        if immediate and self.calls.lock.acquire(timeout=IMMEDIATE_WAIT_S):
            try:
                if self._mode == "stopping":
                    self._stopping_cycle(time.monotonic())
            finally:
                self.calls.lock.release()

    def cut_stop(self) -> None:
        """Skip the rest of a running stop's hold/damp: disable on the next cycle."""
        self._cut = True

    def wait_stopped(self, timeout: float) -> bool:
        return self.stopped.wait(timeout)

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stats(self) -> ChainStats:
        return self.wire.stats

    @property
    def bus_error(self) -> str | None:
        return self.wire.bus_error

    @property
    def last_tx_ok(self) -> float:
        return self.wire.last_tx_ok

    def state(self) -> ChainState:
        return self.readings.snapshot(self.stats.cycles, self._mode)

    def stop_thread(self) -> None:
        self._stop_thread.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.calls.owner = None
        self._mode = "idle"

    def close(self) -> None:
        self.stop_thread()
        with contextlib.suppress(Exception):
            self.wire.bus.shutdown()

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        period = 1.0 / self.rate_hz if self.rate_hz > 0 else 0.0
        next_t = time.monotonic()
        stats = self.wire.stats
        try:
            while not self._stop_thread.is_set():
                self.calls.run_pending()
                t0 = time.monotonic()
                with self.calls.lock:
                    self._cycle(t0)
                stats = self.wire.stats
                dt = time.monotonic() - t0
                stats.cycle_time_max_s = max(stats.cycle_time_max_s, dt)
                stats.cycle_times_s.append(dt)
                if period:
                    next_t += period
                    now = time.monotonic()
                    if next_t < now - period:
                        next_t = now  # fell behind: do not burst to catch up
                    self._stop_thread.wait(max(0.0, next_t - now))
        except BaseException as exc:
            self._set_fault(f"{self.name}: control thread crashed: {type(exc).__name__}: {exc}")
            self._mode = "idle"
            raise
        finally:
            self.calls.run_pending(cancel=True)

    def _cycle(self, now: float) -> None:
        mode = self._mode
        if mode == "monitor":
            reqs = [Request(i, REGISTER_SERVICE_ID, refresh_request(m.esc_id)) for i, m in enumerate(self.motors)]
            self._after_cycle(self._exchange(reqs), control=False)
        elif mode == "control":
            self._control_cycle(now)
        elif mode == "stopping":
            self._stopping_cycle(now)
        self.wire.stats.cycles += 1

    def _control_cycle(self, now: float) -> None:
        stats = self.wire.stats
        # the shaping steps in nominal periods (positions are a function of the cycle count);
        # the velocity sent with them is scaled to the real time between cycles, so a cycle that
        # comes late does not ask the motor to run ahead of its command
        pace = 1.0
        if self._last_control_t is not None:
            gap = now - self._last_control_t
            pace = self.period / max(gap, self.period)
            stats.gap_max_s = max(stats.gap_max_s, gap)
            if gap > 3 * self.period:
                # this thread did not run (host stall): a motor is not silent for the time
                # nobody asked it anything, nor is the runner; the stretch counts one cycle
                self._excuse_host_stall(now, gap - self.period)
                gap = self.period
            self._watched_s += gap
        self._last_control_t = now
        reason = self._stop_cause(now)
        if reason is not None:
            with self._state_lock:
                self._begin_stop(reason)
            self._stopping_cycle(now)
            return
        with self._state_lock:  # plain floats from here: this runs every bus cycle
            target = self._target.tolist()
            torque_ff = self._torque_ff.tolist()
        horizon = max(self._interp_s, self.period)
        reqs = []
        alpha = min(1.0, self.period / SUPPORT_TAU_S)
        for i, (m, c) in enumerate(zip(self.motors, self._controls, strict=True)):
            r = self.readings[i]
            at_rest = abs(r.velocity) < SUPPORT_STILL_RAD_S and abs(self._shaped[i].velocity) < SUPPORT_STILL_RAD_S
            if at_rest and math.isfinite(r.position):
                # at rest, the reply to the previous command says how hard it had to pull:
                # the load (gravity), not a motion transient
                spring = spring_torque(c, self._shaped[i].position, r.position, self._sent_ff[i])
                self._spring[i] += alpha * (spring - self._spring[i])
            measured = Measured(r.position, r.velocity, r.torque)
            s = shape(c, self._shaped[i], target[i], measured, self.period, horizon)
            self._shaped[i] = s
            self._sent_ff[i] = torque_ff[i]
            cmd = MitCommand(s.position, pace * feedforward_velocity(c, s), c.kp, c.kd, torque_ff[i])
            reqs.append(Request(i, m.esc_id, pack_mit(cmd, m.motor)))
        self._after_cycle(self._exchange(reqs), control=True)
        if self._mode == "stopping":  # this cycle found a fault: the first stop frames go out now
            self._stopping_cycle(time.monotonic())

    def _stop_cause(self, now: float) -> str | None:
        """Why control must stop before sending anything this cycle (None: carry on)."""
        silent = self._watched_s - self._heartbeat
        if self.runner_timeout_s is not None and silent > self.runner_timeout_s:
            self._set_fault(f"{self.name}: no read or action from the runner for {silent:.2f} s")
            return self.fault
        if self._armed_at is not None and self.interrupts is not None and self.interrupts() > self._armed_at:
            self._armed_at = None
            return f"{self.name}: interrupted (signal)"
        return None

    def _stopping_cycle(self, now: float) -> None:
        if self.interrupts is not None and self.interrupts() > self._stop_mark:
            self._cut = True
        elapsed = now - self._stop_started
        if not self._cut and self._controls and self.plan.phase(elapsed) != "disable":
            reqs = []
            for i, (m, c) in enumerate(zip(self.motors, self._controls, strict=True)):
                # a joint still coasting drags its hold pose along: never further than its
                # error band from where it is (the same bound as every control command)
                q = self.readings[i].position
                if math.isfinite(q):
                    self._hold[i] = min(max(self._hold[i], q - c.max_error), q + c.max_error)
                cmd = self.plan.command(elapsed, c, float(self._hold[i]), float(self._support[i]))
                assert cmd is not None
                reqs.append(Request(i, m.esc_id, pack_mit(cmd, m.motor)))
            self._after_cycle(self._exchange(reqs), control=False)
            return
        self._disable_confirmed()
        self._mode = "monitor"
        self.stopped.set()

    def _disable_confirmed(self) -> list[str]:
        outcome = self.ops.disable_confirmed()
        self.still_enabled, self.unconfirmed = outcome.still_enabled, outcome.unconfirmed
        self.disabled_ok = not self.still_enabled
        return self.still_enabled

    def _begin_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._hold = self.readings.positions()
        bad = ~np.isfinite(self._hold)
        commanded = np.array([s.position for s in self._shaped])
        self._hold[bad] = commanded[bad]
        self._support = np.zeros(len(self.motors))
        for i, c in enumerate(self._controls):
            self._support[i] = support_torque(c, self._spring[i])
        self._stop_started = time.monotonic()
        self._stop_mark = self.interrupts() if self.interrupts is not None else 0
        self._cut = False
        self.wire.stats.stop_cycle = self.wire.stats.cycles
        self._mode = "stopping"

    def _exchange(self, reqs: list[Request]) -> Replies:
        """One cycle's frames and replies. A cycle that took far longer than its own deadlines
        allow means this process did not run (a GIL or scheduler stall): the motors had no fair
        chance to answer, so the stall beyond those deadlines is left out of their silence."""
        t0 = time.monotonic()
        got = self.wire.transact(reqs, absorb=True)
        now = time.monotonic()
        t = self.timing
        allowed = (1 + t.max_retries) * (t.reply_timeout_s + 2 * len(reqs) * t.frame_s)
        if now - t0 > allowed + 3 * self.period:
            self._excuse_host_stall(now, now - t0 - allowed)
        return got

    def _excuse_host_stall(self, now: float, excess_s: float) -> None:
        """Leave ``excess_s`` of host stall out of every motor's silence. Shifted, not reset:
        a motor that stays silent is still caught when every cycle is late (a host loaded for
        seconds), since each stalled cycle still adds its own share to the silence."""
        self._last_reply = [min(t + excess_s, now) for t in self._last_reply]

    def _after_cycle(self, got: Replies, control: bool) -> None:
        now = time.monotonic()
        if control and self.wire.bus_error is not None:
            self._fault_and_stop(f"{self.name}: bus error, frames refused: {self.wire.bus_error}", control)
        for i, m in enumerate(self.motors):
            r = self.readings[i]
            if i not in got:
                self.wire.stats.missed += 1
                silent_for = now - self._last_reply[i]
                if self._mode != "monitor" and silent_for > self.timing.reply_budget_s:
                    self._fault_and_stop(
                        f"{m.where}: no reply for {silent_for * 1e3:.0f} ms "
                        f"(budget {self.timing.reply_budget_s * 1e3:.0f} ms)",
                        control,
                    )
                continue
            self._last_reply[i] = got[i][1]
            if control and r.status != MotorStatus.ENABLED:
                what = status_text(r.status) if is_fault(r.status) else "disabled itself"
                self._fault_and_stop(f"{m.where}: {what}", control)

    def _fault_and_stop(self, message: str, control: bool) -> None:
        first = self.fault is None
        self._set_fault(message)
        if first:
            self.wire.stats.fault_cycle = self.wire.stats.cycles
        if control:
            with self._state_lock:
                if self._mode == "control":
                    self._begin_stop(message)

    def _set_fault(self, message: str) -> None:
        if self.fault is None:
            self.fault = message
            if self.on_fault is not None:
                with contextlib.suppress(Exception):
                    self.on_fault(message)

    # ------------------------------------------------------------------ helpers
    def _check_controls(self, controls: Sequence[JointControl]) -> None:
        if len(controls) != len(self.motors):
            raise ValueError(f"{self.name}: {len(controls)} joint controls for {len(self.motors)} motors")




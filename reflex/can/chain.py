"""The motor chain driver: one CAN bus, several Damiao motors, one control thread.

Each cycle sends one frame to every motor and collects every reply. In the ``pipelined``
strategy (default) all frames go out back to back and replies are matched by their id as they
come, so a cycle costs about one wire time per frame instead of one round trip per motor; the
``sequential`` strategy (send one, wait for its reply, next) exists for comparison.

Every motor has its own reply deadline and a bounded number of resends per cycle; a motor that
stays silent for more than ``missed_reply_budget`` consecutive cycles is a fault. Stray frames
(unknown ids) and late replies are counted and ignored: they never trigger a resend.

Modes of the thread:

* ``monitor``: read-only. Polls with the register-service *refresh* frame (0x7FF, CMD 0xCC),
  which returns a feedback frame and changes nothing. No enable, no MIT frame, no torque.
* ``control``: MIT frames towards the latest target, slew-limited, clamped to limits and to a
  band around the measured position. Any reply that is not "enabled", a missed-reply budget
  exceeded or a silent runner starts a safe stop on the very next cycle.
* ``stopping``: hold the measured pose with damping while the stiffness ramps to zero, then
  disable every motor and fall back to ``monitor``. Nothing ever re-enables a motor on its own.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import can
import numpy as np
from numpy.typing import ArrayLike

from reflex.can.bus import BITRATE, BITS_PER_FRAME, check_bus_load
from reflex.can.codec import (
    Feedback,
    MitCommand,
    Special,
    decode_feedback,
    pack_mit,
    parse_register_message,
    refresh_request,
    register_request,
    reply_id,
    special_frame,
)
from reflex.can.faults import MotorError, MotorFault, MotorSilent, MotorStatus, is_fault, status_text
from reflex.can.motors import MotorType
from reflex.can.registers import REGISTER_SERVICE_ID, RegisterCmd, decode_value, encode_value

T = TypeVar("T")
Mode = Literal["idle", "monitor", "control", "stopping"]
Strategy = Literal["pipelined", "sequential"]


@dataclass(frozen=True)
class ChainMotor:
    """One motor on the bus; ``name`` is what errors say (e.g. ``left joint4``)."""

    name: str
    esc_id: int
    motor: MotorType
    mst_id: int | None = None

    @property
    def reply_id(self) -> int:
        return self.mst_id if self.mst_id is not None else reply_id(self.esc_id)

    @property
    def where(self) -> str:
        return f"{self.name} (motor 0x{self.esc_id:02X})"


@dataclass(frozen=True)
class JointControl:
    """How the control mode commands one motor (motor-side radians)."""

    kp: float
    kd: float
    lower: float = -math.inf
    upper: float = math.inf
    max_error: float = 0.2  # |p_des - measured| bound: limits the torque a bad target can ask for
    max_speed: float = 3.0  # rad/s, slew limit of the commanded position
    velocity_feedforward: bool = True
    # gripper force limit: once stalled (|torque| >= clog_torque at |v| < clog_speed) the error
    # band shrinks to stall_error, so a closed gripper squeezes with about kp * stall_error
    clog_torque: float | None = None
    clog_speed: float = 0.3
    stall_error: float = 0.05


@dataclass(frozen=True)
class ChainTiming:
    bitrate: int = BITRATE
    bits_per_frame: int = BITS_PER_FRAME
    reply_timeout_s: float = 0.002  # per motor, on top of the wire time of the frames in flight
    max_retries: int = 1  # resends per motor per cycle
    # one-shot operations (bring-up reads, enable, disable) are not time-critical: wait longer
    setup_timeout_s: float = 0.02
    setup_retries: int = 3
    missed_reply_budget: int = 10  # consecutive cycles without a reply -> fault
    stop_hold_s: float = 0.3  # safe stop: hold the pose while stiffness ramps to zero
    stop_disable_s: float = 0.5  # keep sending FD this long to motors that did not confirm

    @property
    def frame_s(self) -> float:
        return self.bits_per_frame / self.bitrate


@dataclass
class MotorReading:
    position: float = math.nan  # unwrapped, motor-side rad
    velocity: float = math.nan
    torque: float = math.nan
    t_mos: int = 0
    t_rotor: int = 0
    status: MotorStatus | int = MotorStatus.DISABLED
    t_rx: float = math.nan  # monotonic time the reply arrived
    missed: int = 0  # consecutive cycles without a reply


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
    mode: Mode

    @property
    def t_capture(self) -> float:
        """The oldest reply time: the state is at least this fresh."""
        return float(np.min(self.t_rx))


@dataclass
class ChainStats:
    cycles: int = 0
    frames_tx: int = 0
    frames_rx: int = 0
    send_errors: int = 0
    retries: int = 0
    missed: int = 0  # motor-cycles that ended without a reply
    late: int = 0  # replies that came after their cycle (or twice)
    stray: int = 0  # frames with an id that belongs to no motor
    cycle_time_max_s: float = 0.0
    cycle_times_s: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))  # recent cycles
    started: float = field(default_factory=time.monotonic)
    fault_cycle: int | None = None
    stop_cycle: int | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "cycles": self.cycles,
            "rate_hz": self.cycles / elapsed,
            "frames_tx": self.frames_tx,
            "frames_rx": self.frames_rx,
            "send_errors": self.send_errors,
            "retries": self.retries,
            "missed": self.missed,
            "late": self.late,
            "stray": self.stray,
            "cycle_time_max_ms": self.cycle_time_max_s * 1e3,
            "fault_cycle": self.fault_cycle,
            "stop_cycle": self.stop_cycle,
        }


@dataclass
class _Request:
    index: int
    arbitration_id: int
    data: bytes
    expect: tuple[RegisterCmd, int] | None = None  # register reply (cmd, rid); None = feedback
    want_status: int | None = None  # a feedback with another status may be a late reply: wait on


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
    ) -> None:
        if not motors:
            raise ValueError(f"{name}: a chain needs at least one motor")
        ids = [m.reply_id for m in motors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name}: two motors reply on the same id")
        self.timing = timing or ChainTiming()
        if rate_hz > 0:
            check_bus_load(rate_hz, len(motors), self.timing.bitrate)
        self.bus = bus
        self.motors = list(motors)
        self.name = name
        self.rate_hz = rate_hz
        self.strategy: Strategy = strategy
        self.on_fault = on_fault
        self.stats = ChainStats()
        self._by_reply = {m.reply_id: i for i, m in enumerate(self.motors)}
        self._readings = [MotorReading() for _ in self.motors]
        self._unwrap = [0.0] * len(self.motors)
        self._last_register: dict[int, tuple[int, int]] = {}
        self._lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._calls: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._stop_thread = threading.Event()
        self._thread: threading.Thread | None = None
        self._mode: Mode = "idle"
        self._controls: list[JointControl] = []
        self._target: np.ndarray = np.zeros(len(self.motors))
        self._command: np.ndarray = np.zeros(len(self.motors))
        self._torque_ff: np.ndarray = np.zeros(len(self.motors))
        self._interp_s = 0.0
        self._last_cycle_t = 0.0
        self._heartbeat = time.monotonic()
        self.runner_timeout_s: float | None = None
        self.fault: str | None = None
        self.stop_reason: str | None = None
        self._stop_started = 0.0
        self._hold: np.ndarray = np.zeros(len(self.motors))
        self.stopped = threading.Event()
        self.stopped.set()
        self.disabled_ok = True
        self.still_enabled: list[str] = []
        self.unconfirmed: list[str] = []

    # ================================================================== blocking operations
    def refresh(self) -> list[Feedback]:
        """Read every motor once without changing anything; raises naming a silent motor."""
        reqs = [_Request(i, REGISTER_SERVICE_ID, refresh_request(m.esc_id)) for i, m in enumerate(self.motors)]
        got = self._call(lambda: self._transact(reqs, absorb=True, setup=True))
        self._raise_missing(got, "no reply to a refresh (0x7FF, CMD 0xCC)")
        return [decode_feedback(got[i][0], m.motor) for i, m in enumerate(self.motors)]

    def read_register(self, index: int, rid: int) -> float | int:
        return self._register(index, RegisterCmd.READ, rid)

    def write_register(self, index: int, rid: int, value: float | int) -> float | int:
        echoed = self._register(index, RegisterCmd.WRITE, rid, encode_value(rid, value))
        if echoed != decode_value(rid, encode_value(rid, value)):
            raise MotorError(self.motors[index].where, f"register {rid} write echoed {echoed}, sent {value}")
        return echoed

    def enable_all(self) -> list[Feedback]:
        """FC to every motor; each must answer 'enabled'. Used only by an explicit bring-up."""
        return self._special_all(Special.ENABLE, "enable (FC)")

    def disable_all(self) -> list[str]:
        """FD to every motor, with retries; returns the motors that still answer 'enabled'.
        A silent motor cannot confirm and is listed in :attr:`unconfirmed` (its own watchdog
        damps it)."""
        return self._call(self._disable_confirmed)

    def clear_errors(self, indices: Sequence[int]) -> None:
        """FB to the given motors. Whether a motor answers FB is not established: any reply is
        read and dropped, none is waited for beyond one reply timeout."""

        def run() -> None:
            for i in indices:
                self._send(self.motors[i].esc_id, special_frame(Special.CLEAR_ERROR))
            deadline = time.monotonic() + self.timing.setup_timeout_s + len(indices) * 2 * self.timing.frame_s
            while time.monotonic() < deadline:
                if self.bus.recv(timeout=max(0.0, deadline - time.monotonic())) is None:
                    break

        self._call(run)

    # ================================================================== the thread
    def start(self) -> None:
        """Start the thread in monitor mode (read-only polling)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: the chain thread is already running")
        self._mode = "monitor"
        self.stats = ChainStats()
        self._stop_thread.clear()
        self._thread = threading.Thread(target=self._loop, name=f"can-{self.name}", daemon=True)
        self._thread.start()

    def start_control(self, controls: Sequence[JointControl], interp_s: float) -> None:
        """Switch to control mode holding the measured pose. Motors must already be enabled."""
        if len(controls) != len(self.motors):
            raise ValueError(f"{self.name}: {len(controls)} joint controls for {len(self.motors)} motors")

        def run() -> None:
            measured = np.array([r.position for r in self._readings])
            if not np.all(np.isfinite(measured)):
                raise MotorError(self.name, "control needs a fresh reading of every motor")
            self._controls = list(controls)
            self._target = measured.copy()
            self._command = measured.copy()
            self._torque_ff = np.zeros(len(self.motors))
            self._interp_s = interp_s
            self._heartbeat = self._last_cycle_t = time.monotonic()
            self.fault = None
            self.stopped.clear()
            self._mode = "control"

        self._call(run)

    def set_targets(self, positions: ArrayLike, torques: ArrayLike | None = None) -> None:
        """Latest target wins; the thread slews towards it. Ignored unless in control mode."""
        target = np.asarray(positions, dtype=float)
        if target.shape != (len(self.motors),) or not np.all(np.isfinite(target)):
            raise ValueError(f"{self.name}: targets must be {len(self.motors)} finite numbers")
        with self._state_lock:
            self._target = target.copy()
            if torques is not None:
                self._torque_ff = np.asarray(torques, dtype=float).copy()
            self._heartbeat = time.monotonic()

    def set_controls(self, controls: Sequence[JointControl]) -> None:
        """Change gains/limits in control mode; a changed joint restarts from its measured position."""
        if len(controls) != len(self.motors):
            raise ValueError(f"{self.name}: {len(controls)} joint controls for {len(self.motors)} motors")

        def run() -> None:
            for i, (old, new) in enumerate(zip(self._controls, controls, strict=True)):
                if old != new:
                    self._command[i] = self._readings[i].position
            self._controls = list(controls)

        self._call(run)

    def targets(self) -> np.ndarray:
        with self._state_lock:
            return self._target.copy()

    def measured(self) -> np.ndarray:
        with self._state_lock:
            return np.array([r.position for r in self._readings])

    def touch(self) -> None:
        """The runner is alive (it read state or sent an action)."""
        self._heartbeat = time.monotonic()

    def request_stop(self, reason: str) -> None:
        """Start a safe stop on the next cycle (no-op unless motors are being controlled)."""
        with self._state_lock:
            if self._mode == "control":
                self._begin_stop(reason)

    def wait_stopped(self, timeout: float) -> bool:
        return self.stopped.wait(timeout)

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def state(self) -> ChainState:
        with self._state_lock:
            r = self._readings
            return ChainState(
                position=np.array([x.position for x in r]),
                velocity=np.array([x.velocity for x in r]),
                torque=np.array([x.torque for x in r]),
                t_mos=np.array([x.t_mos for x in r]),
                t_rotor=np.array([x.t_rotor for x in r]),
                status=tuple(x.status for x in r),
                t_rx=np.array([x.t_rx for x in r]),
                cycle=self.stats.cycles,
                mode=self._mode,
            )

    def missed_counts(self) -> list[int]:
        return [r.missed for r in self._readings]

    def stop_thread(self) -> None:
        self._stop_thread.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._mode = "idle"

    def close(self) -> None:
        self.stop_thread()
        with contextlib.suppress(Exception):
            self.bus.shutdown()

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        period = 1.0 / self.rate_hz if self.rate_hz > 0 else 0.0
        next_t = time.monotonic()
        try:
            while not self._stop_thread.is_set():
                self._run_calls()
                t0 = time.monotonic()
                with self._lock:
                    self._cycle(t0)
                dt = time.monotonic() - t0
                self.stats.cycle_time_max_s = max(self.stats.cycle_time_max_s, dt)
                self.stats.cycle_times_s.append(dt)
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
            self._run_calls(cancel=True)

    def _run_calls(self, cancel: bool = False) -> None:
        while True:
            try:
                fn, fut = self._calls.get_nowait()
            except queue.Empty:
                return
            if cancel:
                fut.set_exception(RuntimeError(f"{self.name}: chain thread stopped"))
                continue
            try:
                with self._lock:
                    fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def _call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` with the bus: directly if the thread is not running, else on the thread."""
        if self._thread is None or threading.current_thread() is self._thread or not self._thread.is_alive():
            with self._lock:
                return fn()
        fut: Future[T] = Future()
        self._calls.put((fn, fut))
        return fut.result(timeout=timeout)

    def _cycle(self, now: float) -> None:
        mode = self._mode
        if mode == "monitor":
            reqs = [_Request(i, REGISTER_SERVICE_ID, refresh_request(m.esc_id)) for i, m in enumerate(self.motors)]
            self._after_cycle(self._transact(reqs, absorb=True), control=False)
        elif mode == "control":
            self._control_cycle(now)
        elif mode == "stopping":
            self._stopping_cycle(now)
        self.stats.cycles += 1

    def _control_cycle(self, now: float) -> None:
        if self.runner_timeout_s is not None and now - self._heartbeat > self.runner_timeout_s:
            self._set_fault(f"{self.name}: no read or action from the runner for {now - self._heartbeat:.2f} s")
            with self._state_lock:
                self._begin_stop(self.fault or "runner silent")
            self._stopping_cycle(now)
            return
        period = 1.0 / self.rate_hz if self.rate_hz > 0 else 0.002
        dt = min(max(now - self._last_cycle_t, 0.0), 2 * period)
        self._last_cycle_t = now
        with self._state_lock:
            target = self._target.copy()
            torque_ff = self._torque_ff.copy()
        reqs = []
        for i, (m, c) in enumerate(zip(self.motors, self._controls, strict=True)):
            p, v = self._shape(i, c, target[i], dt)
            cmd = MitCommand(p, v, c.kp, c.kd, float(torque_ff[i]))
            reqs.append(_Request(i, m.esc_id, pack_mit(cmd, m.motor)))
        self._after_cycle(self._transact(reqs, absorb=True), control=True)

    def _shape(self, i: int, c: JointControl, target: float, dt: float) -> tuple[float, float]:
        """Next commanded position and velocity: slew towards the target over the interpolation
        horizon, never faster than max_speed, never outside limits or the error band."""
        current = float(self._command[i])
        target = min(max(target, c.lower), c.upper)
        horizon = max(self._interp_s, dt, 1e-6)
        v = (target - current) / horizon
        v = min(max(v, -c.max_speed), c.max_speed)
        step = v * dt
        p = target if abs(step) >= abs(target - current) else current + step
        reading = self._readings[i]
        band = c.max_error
        if c.clog_torque is not None and abs(reading.torque) >= c.clog_torque and abs(reading.velocity) < c.clog_speed:
            band = min(band, c.stall_error)
        measured = reading.position
        p = min(max(p, measured - band, c.lower), measured + band, c.upper)
        self._command[i] = p
        v = v if c.velocity_feedforward and p != target else 0.0
        if v and c.kp > 0 and c.kd > 0:
            # A motor holding this frame (the host stalls) settles where kp (p - q) + kd v = 0, at
            # q = p + kd v / kp: keep that point inside the joint limits too.
            reach = c.kd / c.kp
            v = min(max(v, (c.lower - p) / reach), (c.upper - p) / reach)
        return p, v

    def _stopping_cycle(self, now: float) -> None:
        elapsed = now - self._stop_started
        if elapsed < self.timing.stop_hold_s and self._controls:
            scale = 1.0 - elapsed / self.timing.stop_hold_s
            reqs = []
            for i, (m, c) in enumerate(zip(self.motors, self._controls, strict=True)):
                cmd = MitCommand(float(self._hold[i]), 0.0, c.kp * scale, c.kd, 0.0)
                reqs.append(_Request(i, m.esc_id, pack_mit(cmd, m.motor)))
            self._after_cycle(self._transact(reqs, absorb=True), control=False)
            return
        self._disable_confirmed()
        self._mode = "monitor"
        self.stopped.set()

    def _disable_confirmed(self) -> list[str]:
        """FD until every motor answered 'not enabled', or ``stop_disable_s`` ran out."""
        todo = list(range(len(self.motors)))
        answered: set[int] = set()
        deadline = time.monotonic() + self.timing.stop_disable_s
        while todo:
            reqs = [_Request(i, self.motors[i].esc_id, special_frame(Special.DISABLE)) for i in todo]
            got = self._transact(reqs, absorb=True, setup=True)
            answered.update(got)
            todo = [i for i in todo if i not in got or self._readings[i].status == MotorStatus.ENABLED]
            if time.monotonic() > deadline:
                break
        # answered "enabled" to FD: a failed stop. Never answered: cannot confirm (its own
        # watchdog will damp it), reported separately.
        self.still_enabled = [self.motors[i].where for i in todo if i in answered]
        self.unconfirmed = [self.motors[i].where for i in todo if i not in answered]
        self.disabled_ok = not self.still_enabled
        return self.still_enabled

    def _begin_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._hold = np.array([r.position for r in self._readings])
        bad = ~np.isfinite(self._hold)
        self._hold[bad] = self._command[bad]
        self._stop_started = time.monotonic()
        self.stats.stop_cycle = self.stats.cycles + 1
        self._mode = "stopping"

    def _after_cycle(self, got: dict[int, tuple[bytes, float]], control: bool) -> None:
        for i, m in enumerate(self.motors):
            r = self._readings[i]
            if i not in got:
                r.missed += 1
                self.stats.missed += 1
                if r.missed > self.timing.missed_reply_budget:
                    self._fault_and_stop(
                        f"{m.where}: no reply for {r.missed} consecutive cycles "
                        f"(budget {self.timing.missed_reply_budget})",
                        control,
                    )
                continue
            r.missed = 0
            if control and r.status != MotorStatus.ENABLED:
                what = status_text(r.status) if is_fault(r.status) else "disabled itself"
                self._fault_and_stop(f"{m.where}: {what}", control)

    def _fault_and_stop(self, message: str, control: bool) -> None:
        first = self.fault is None
        self._set_fault(message)
        if first:
            self.stats.fault_cycle = self.stats.cycles
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

    # ================================================================== one exchange on the wire
    def _transact(self, reqs: list[_Request], absorb: bool, setup: bool = False) -> dict[int, tuple[bytes, float]]:
        """Send every request and collect one matching reply each (index -> (data, t_rx))."""
        self._drain()
        if self.strategy == "sequential":
            got: dict[int, tuple[bytes, float]] = {}
            for req in reqs:
                got.update(self._exchange([req], setup))
        else:
            got = self._exchange(reqs, setup)
        if absorb:
            feedback = {r.index for r in reqs if r.expect is None}
            for i, (data, t_rx) in got.items():
                if i in feedback:
                    self._absorb(i, data, t_rx)
        return got

    def _exchange(self, reqs: list[_Request], setup: bool = False) -> dict[int, tuple[bytes, float]]:
        t = self.timing
        timeout = t.setup_timeout_s if setup else t.reply_timeout_s
        retries = t.setup_retries if setup else t.max_retries
        got: dict[int, tuple[bytes, float]] = {}
        pending: dict[int, _Request] = {}
        deadline: dict[int, float] = {}
        attempts: dict[int, int] = {}
        in_flight = 2 * len(reqs) * t.frame_s
        for req in reqs:
            pending[req.index] = req
            attempts[req.index] = 0
            self._send(req.arbitration_id, req.data)
            deadline[req.index] = time.monotonic() + in_flight + timeout
        while pending:
            wait = min(deadline[i] for i in pending) - time.monotonic()
            msg = self.bus.recv(timeout=max(0.0, wait))
            while msg is not None:  # take everything that arrived before judging deadlines:
                self._take(msg, pending, got)  # after a scheduling stall, replies wait queued
                msg = self.bus.recv(timeout=0.0) if pending else None
            now = time.monotonic()
            for i in [i for i, d in deadline.items() if d <= now and i in pending]:
                if attempts[i] < retries and (i not in got or pending[i].want_status is not None):
                    attempts[i] += 1
                    self.stats.retries += 1
                    self._send(pending[i].arbitration_id, pending[i].data)
                    deadline[i] = time.monotonic() + 2 * t.frame_s + timeout
                else:
                    del pending[i]
        return got

    def _take(self, msg: can.Message, pending: dict[int, _Request], got: dict[int, tuple[bytes, float]]) -> None:
        """Match one received frame to a pending request (or count it as stray / late)."""
        t_rx = time.monotonic()
        self.stats.frames_rx += 1
        index = self._by_reply.get(msg.arbitration_id)
        if index is None or msg.is_extended_id:
            self.stats.stray += 1
            return
        data = bytes(msg.data)
        if index not in pending or not self._matches(index, pending[index], data):
            self.stats.late += 1
            return
        want = pending[index].want_status
        got[index] = (data, t_rx)
        if want is None or data[0] >> 4 == want:
            del pending[index]
        # else: keep it provisionally; a reply with the wanted status may still come

    def _matches(self, index: int, req: _Request, data: bytes) -> bool:
        if len(data) != 8:
            return False
        esc = self.motors[index].esc_id
        if req.expect is not None:
            cmd, rid = req.expect
            return data[0] | (data[1] << 8) == esc and data[2] == cmd and data[3] == rid
        # a feedback frame: refuse the echo of the last register request to this motor
        last = self._last_register.get(index)
        if last is not None and data[0] | (data[1] << 8) == esc and (data[2], data[3]) == last:
            return False
        return (data[0] & 0xF) == (esc & 0xF)

    def _send(self, arbitration_id: int, data: bytes) -> None:
        try:
            self.bus.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False))
            self.stats.frames_tx += 1
        except can.CanError:
            self.stats.send_errors += 1  # counted; the missing reply is retried like a lost one

    def _drain(self) -> None:
        while (msg := self.bus.recv(timeout=0.0)) is not None:
            self.stats.frames_rx += 1
            if msg.arbitration_id in self._by_reply:
                self.stats.late += 1
            else:
                self.stats.stray += 1

    def _absorb(self, index: int, data: bytes, t_rx: float) -> None:
        m = self.motors[index]
        fb = decode_feedback(data, m.motor)
        with self._state_lock:
            r = self._readings[index]
            position = fb.position + self._unwrap[index]
            if math.isfinite(r.position) and abs(position - r.position) > m.motor.pmax:
                # the reading wrapped at +-PMAX: keep the position continuous
                self._unwrap[index] -= math.copysign(2 * m.motor.pmax, position - r.position)
                position = fb.position + self._unwrap[index]
            r.position, r.velocity, r.torque = position, fb.velocity, fb.torque
            r.t_mos, r.t_rotor, r.status, r.t_rx = fb.t_mos, fb.t_rotor, fb.status, t_rx
        self._last_register.pop(index, None)

    # ------------------------------------------------------------------ helpers
    def _register(self, index: int, cmd: RegisterCmd, rid: int, value: bytes = b"\0\0\0\0") -> float | int:
        m = self.motors[index]
        req = _Request(index, REGISTER_SERVICE_ID, register_request(m.esc_id, cmd, rid, value), (cmd, rid))

        def run() -> float | int:
            self._last_register[index] = (int(cmd), rid)
            got = self._transact([req], absorb=False, setup=True)
            if index not in got:
                raise MotorSilent(m.where, f"no reply to register {cmd.name.lower()} of register {rid}")
            parsed = parse_register_message(got[index][0])
            assert parsed is not None
            return decode_value(rid, parsed.value)

        return self._call(run)

    def _special_all(self, special: Special, label: str) -> list[Feedback]:
        want = MotorStatus.ENABLED if special is Special.ENABLE else None
        reqs = [_Request(i, m.esc_id, special_frame(special), want_status=want) for i, m in enumerate(self.motors)]
        got = self._call(lambda: self._transact(reqs, absorb=True, setup=True))
        self._raise_missing(got, f"no reply to {label}")
        out = [decode_feedback(got[i][0], m.motor) for i, m in enumerate(self.motors)]
        for m, fb in zip(self.motors, out, strict=True):
            if fb.status != MotorStatus.ENABLED:
                if is_fault(fb.status):
                    raise MotorFault(m.where, fb.status)
                raise MotorError(m.where, f"{label} answered {status_text(fb.status)}")
        return out

    def _raise_missing(self, got: dict[int, tuple[bytes, float]], message: str) -> None:
        for i, m in enumerate(self.motors):
            if i not in got:
                raise MotorSilent(m.where, f"{message} after {1 + self.timing.setup_retries} tries")

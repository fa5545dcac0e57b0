"""One YAM arm on one CAN bus: bring-up checks, joint <-> motor mapping, gripper calibration.

Joint space is what the session sees (radians for joints 1-6, 0 = closed .. 1 = open for the
gripper); motor space is what goes on the wire. Nothing in :meth:`YamArmDriver.connect` can make
torque: it polls with refresh frames and reads registers. Torque needs :meth:`enable`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reflex.can.bus import open_bus
from reflex.can.chain import ChainMotor, ChainState, ChainTiming, JointControl, MotorChain
from reflex.can.faults import MotorError, MotorStatus, is_fault, status_text
from reflex.can.motors import MotorType, motor_table
from reflex.can.registers import (
    CTRL_MODE_MIT,
    RID_CTRL_MODE,
    RID_PMAX,
    RID_TIMEOUT,
    RID_TMAX,
    RID_VMAX,
    TIMEOUT_UNIT_S,
)
from reflex.can.stop import StopPlan
from reflex.can.unconfirmed import left_to_watchdog
from reflex.config.stop import StopConfig
from reflex.errors import SetupError
from reflex.hardware.yam.arm import (
    ARM_IDS,
    ARM_KD,
    ARM_KP,
    ARM_MOTOR_TYPES,
    GRIPPER_ID,
    GripperSpec,
    arm_limits,
    gripper_spec,
    joint_names,
)
from reflex.hardware.yam.config import YamArmConfig, YamBimanualConfig

CALIBRATION_TORQUE = 0.5  # Nm, as i2rt
CALIBRATION_MAX_S = 2.0
CALIBRATION_SAMPLE_S = 0.05
CALIBRATION_STILL_RAD = 0.01


@dataclass
class BringUp:
    """What connect found on each motor (registers, first reading)."""

    ctrl_mode: list[int] = field(default_factory=list)
    timeout: list[int] = field(default_factory=list)
    first_status: list[MotorStatus | int] = field(default_factory=list)


class YamArmDriver:
    def __init__(
        self,
        side: str,
        config: YamBimanualConfig,
        config_dir: Path,
        on_fault: Callable[[str], None] | None = None,
    ) -> None:
        self.side = side
        self.config = config
        self.arm: YamArmConfig = config.arm(side)
        self.config_dir = config_dir
        self.on_fault = on_fault
        self.gripper: GripperSpec | None = gripper_spec(self.arm.gripper)
        self.names = joint_names(self.gripper is not None)
        table = motor_table({k: v.model_dump(exclude_none=True) for k, v in config.motor_ranges.items()})
        types: list[MotorType] = [table[t] for t in ARM_MOTOR_TYPES]
        ids = list(ARM_IDS)
        if self.gripper is not None:
            types.append(table[self.gripper.motor])
            ids.append(GRIPPER_ID)
        self.motor_types = types
        self.motors = [
            ChainMotor(f"{side} {n} on {self.arm.channel}", esc, mt)
            for n, esc, mt in zip(self.names, ids, types, strict=True)
        ]
        self.offsets = np.zeros(len(self.motors))  # joint = motor + offset (multiples of 2 pi)
        self.gripper_limits: tuple[float, float] | None = (
            tuple(self.arm.gripper_limits) if self.arm.gripper_limits is not None else None  # type: ignore[assignment]
        )
        self.gripper_calibrated = self.gripper_limits is not None
        self.chain: MotorChain | None = None
        self.bringup = BringUp()
        self.enabled = False
        # the session's max_delta per joint (rad; gripper as a fraction of its stroke): the chain
        # keeps every command within it of the measured position, however late the runner's
        # target is, so the guard's per-step bound holds for each frame on the bus too
        self.step_band: list[float] | None = None
        self.unconfirmed: list[str] = []
        self.left_to_watchdog: list[dict[str, Any]] = []  # see reflex.can.unconfirmed

    # ------------------------------------------------------------------ naming
    def where(self, i: int) -> str:
        return self.motors[i].where

    # ------------------------------------------------------------------ connect (read-only)
    def connect(
        self,
        control_rate_hz: float,
        stop: StopConfig | None = None,
        signals: Callable[[], int] | None = None,
    ) -> None:
        cfg = self.config
        try:
            bus = open_bus(self.arm.channel, self.arm.interface, cfg.bitrate)
        except OSError as exc:
            raise SetupError(f"hardware.config.{self.side}.channel", str(exc)) from exc
        budget_ms = cfg.reply_budget_ms if cfg.reply_budget_ms is not None else 500.0 / control_rate_hz
        timing = ChainTiming(
            bitrate=cfg.bitrate,
            reply_timeout_s=cfg.reply_timeout_ms / 1e3,
            max_retries=cfg.max_retries,
            reply_budget_s=budget_ms / 1e3,
        )
        self.chain = MotorChain(
            bus,
            self.motors,
            name=f"{self.side} arm",
            rate_hz=cfg.bus_rate_hz,
            timing=timing,
            strategy=cfg.strategy,
            on_fault=self.on_fault,
            stop_plan=stop_plan(stop or StopConfig()),
        )
        self.chain.runner_timeout_s = cfg.runner_timeout_s
        self.chain.interrupts = signals
        try:
            feedback = self.chain.refresh()
            self._check_registers()
        except MotorError as exc:
            raise SetupError(f"hardware.config.{self.side}", str(exc)) from exc
        self.bringup.first_status = [fb.status for fb in feedback]
        self._choose_offsets([fb.position for fb in feedback])
        self.chain.start()

    def _check_registers(self) -> None:
        chain = self.chain
        assert chain is not None
        for i, m in enumerate(self.motors):
            ranges = [float(chain.read_register(i, rid)) for rid in (RID_PMAX, RID_VMAX, RID_TMAX)]
            expected = [m.motor.pmax, m.motor.vmax, m.motor.tmax]
            if not np.allclose(ranges, expected, rtol=1e-4, atol=1e-4):
                raise MotorError(
                    m.where,
                    f"registers PMAX/VMAX/TMAX read {ranges}, but {m.motor.name} is configured as "
                    f"{expected}: every command would be scaled wrong (set hardware.config."
                    f"motor_ranges.{m.motor.name} if the motor is right)",
                )
            self.bringup.ctrl_mode.append(int(chain.read_register(i, RID_CTRL_MODE)))
            self.bringup.timeout.append(int(chain.read_register(i, RID_TIMEOUT)))

    def _choose_offsets(self, positions: list[float]) -> None:
        """Arm joints power up reporting their absolute angle within one turn: bring each into
        (-pi, pi] so the model's limits apply."""
        for j in range(min(6, len(positions))):
            q = positions[j]
            self.offsets[j] = -2 * math.pi * math.floor((q + math.pi) / (2 * math.pi)) if abs(q) > math.pi else 0.0

    # ------------------------------------------------------------------ state
    def state(self) -> ChainState:
        assert self.chain is not None
        return self.chain.state()

    def joints(self, st: ChainState) -> np.ndarray:
        q = st.position + self.offsets
        if self.gripper is not None:
            q[-1] = self.gripper_fraction(st.position[-1])
        return q

    def joint_velocity(self, st: ChainState) -> np.ndarray:
        v = st.velocity.copy()
        if self.gripper is not None:
            closed, opened = self.limits_or_nominal()
            v[-1] = v[-1] / (opened - closed)
        return v

    def limits_or_nominal(self) -> tuple[float, float]:
        if self.gripper_limits is not None:
            return self.gripper_limits
        assert self.gripper is not None
        return self.gripper.nominal_limits()

    def gripper_fraction(self, raw: float) -> float:
        closed, opened = self.limits_or_nominal()
        return float(np.clip((raw - closed) / (opened - closed), 0.0, 1.0))

    def gripper_raw(self, fraction: float) -> float:
        closed, opened = self.limits_or_nominal()
        return closed + float(np.clip(fraction, 0.0, 1.0)) * (opened - closed)

    # ------------------------------------------------------------------ enable (torque)
    def check_enable(self) -> list[str]:
        """Every reason this arm must not be enabled now (empty: ready)."""
        assert self.chain is not None
        problems = []
        try:
            self.chain.refresh()  # a fresh answer from every motor, with bring-up timeouts
        except MotorError as exc:
            return [str(exc)]
        st = self.chain.state()
        lower, upper = arm_limits()
        margin = self.config.limit_margin
        for i, m in enumerate(self.motors):
            status = st.status[i]
            if is_fault(status) and not (status == MotorStatus.LOSS_OF_COMMUNICATION and self.config.clear_comm_loss):
                problems.append(f"{m.where}: reports {status_text(status)}")
            if self.bringup.ctrl_mode[i] != CTRL_MODE_MIT:
                problems.append(f"{m.where}: control mode {self.bringup.ctrl_mode[i]}, expected 1 (MIT)")
            if i < 6:
                q = st.position[i] + self.offsets[i]
                outside = max(lower[i] - q, q - upper[i])
                if outside > margin:
                    side = "below its lower" if q < lower[i] else "above its upper"
                    limit = lower[i] if q < lower[i] else upper[i]
                    problems.append(
                        f"{m.where}: at {q:.3f} rad, {outside:.3f} rad {side} limit {limit:.3f} "
                        f"(bring-up allows {margin} rad; move the joint inside by hand, or check the zero offset)"
                    )
        return problems

    def ensure_watchdog(self) -> None:
        """Write the configured watchdog to every motor and read it back; a motor that does not
        confirm it refuses bring-up (a watchdog we have not verified is not a watchdog)."""
        assert self.chain is not None
        value = round(self.config.watchdog_ms / 1e3 / TIMEOUT_UNIT_S)
        for i in range(len(self.motors)):
            try:
                self.chain.write_register(i, RID_TIMEOUT, value)
                read = int(self.chain.read_register(i, RID_TIMEOUT))
            except MotorError as exc:
                raise MotorError(
                    self.where(i), f"cannot set the watchdog to {self.config.watchdog_ms:g} ms ({value}): {exc}"
                ) from exc
            self.bringup.timeout[i] = read
            if read != value:
                raise MotorError(
                    self.where(i),
                    f"watchdog reads back {read} ({read * TIMEOUT_UNIT_S * 1e3:g} ms) after writing {value} "
                    f"({self.config.watchdog_ms:g} ms): refusing to enable",
                )

    def enable(self, control_rate_hz: float) -> None:
        chain = self.chain
        assert chain is not None
        latched = [i for i, s in enumerate(chain.state().status) if s == MotorStatus.LOSS_OF_COMMUNICATION]
        if latched and self.config.clear_comm_loss:
            chain.clear_errors(latched)
        self.enabled = True  # from here on, close() must disable
        chain.enable_all()
        chain.start_control(self._controls(), interp_s=1.0 / control_rate_hz)

    def _band(self, joint: int, limit: float) -> float:
        return limit if self.step_band is None else min(limit, self.step_band[joint])

    def _controls(self, gripper_torque_mode: bool = False) -> list[JointControl]:
        kp = ARM_KP[self.config.variant]
        lower, upper = arm_limits()
        out = [
            JointControl(
                kp=kp[j],
                kd=ARM_KD[j],
                lower=lower[j] - self.offsets[j],
                upper=upper[j] - self.offsets[j],
                max_error=self._band(j, self.config.max_error),
                max_speed=self.config.max_speed,
                max_accel=self.config.max_accel,
                max_jerk=self.config.max_jerk if self.config.max_jerk is not None else math.inf,
            )
            for j in range(6)
        ]
        g = self.gripper
        if g is not None:
            if gripper_torque_mode:
                out.append(JointControl(kp=0.0, kd=0.0, max_error=math.inf, max_speed=math.inf, support_on_stop=False))
            else:
                closed, opened = self.limits_or_nominal()
                out.append(
                    JointControl(
                        kp=g.kp,
                        kd=g.kd,
                        lower=min(closed, opened),
                        upper=max(closed, opened),
                        max_error=self._band(6, self.config.gripper_max_error) * abs(opened - closed),
                        max_speed=self.config.gripper_max_speed,
                        max_accel=self.config.gripper_max_accel,
                        velocity_feedforward=False,
                        support_on_stop=False,
                        clog_torque=g.clog_torque,
                        clog_speed=g.clog_speed,
                        stall_error=g.hold_torque / g.kp,
                    )
                )
        return out

    def needs_calibration(self) -> bool:
        return self.gripper is not None and self.gripper_limits is None

    def set_targets(self, joints: np.ndarray, torques: np.ndarray | None = None) -> None:
        assert self.chain is not None
        motor = joints - self.offsets
        if self.gripper is not None:
            motor[-1] = self.gripper_raw(float(joints[-1]))
        self.chain.set_targets(motor, torques)

    def hold_measured(self) -> np.ndarray:
        """Joint-space targets equal to the current measurement."""
        return self.joints(self.state())

    # ------------------------------------------------------------------ what the robot asks of an arm
    @property
    def fault(self) -> str | None:
        return self.chain.fault if self.chain is not None else None

    @property
    def live(self) -> bool:
        """Motors enabled and the chain commanding or stopping them."""
        return self.enabled and self.chain is not None

    @property
    def controlling(self) -> bool:
        """The chain is commanding this arm (not stopping, not stopped)."""
        return self.chain is not None and self.chain.mode == "control"

    @property
    def stop_reason(self) -> str | None:
        return self.chain.stop_reason if self.chain is not None else None

    def touch(self) -> None:
        if self.chain is not None:
            self.chain.touch()

    def request_stop(self, reason: str, immediate: bool = False) -> None:
        if self.chain is not None:
            self.chain.request_stop(reason, immediate)

    def cut_stop(self) -> None:
        if self.chain is not None:
            self.chain.cut_stop()

    def arm_interrupt(self, armed: bool) -> None:
        """While armed, the next Ctrl-C / SIGTERM stops this arm on its own next bus cycle."""
        if self.chain is not None:
            if armed:
                self.chain.arm_interrupt()
            else:
                self.chain.disarm_interrupt()

    def finish_stop(self, timeout: float) -> list[str]:
        """Wait for a stop this arm's chain runs (or disable directly if it is not running one);
        returns what failed. A motor that never confirmed the disable (silent, replies lost, bus
        off) is a failure too, stated with its watchdog's expiry (:attr:`left_to_watchdog`)."""
        chain = self.chain
        assert chain is not None
        failed: list[str] = []
        if chain.alive and chain.mode == "stopping":
            chain.wait_stopped(timeout)
            if chain.mode == "stopping":
                failed.append(f"{chain.name} did not finish its stop in time")
            failed.extend(chain.still_enabled)
        else:
            # enable failed half-way, the chain stopped itself, or the thread died: disable directly
            failed.extend(chain.disable_all())
        self.unconfirmed = [u.where for u in chain.unconfirmed]
        if chain.unconfirmed:
            cause = (
                f"bus error, no frame reaches its motors: {chain.bus_error}"
                if chain.bus_error is not None
                else f"no reply to the disable frames for {chain.timing.stop_disable_s * 1e3:g} ms"
            )
            text, records = left_to_watchdog(
                chain.name, self.arm.channel, chain.unconfirmed, self.config.watchdog_ms / 1e3, cause
            )
            failed.append(text)
            self.left_to_watchdog.extend(records)
        self.enabled = False
        return failed

    @property
    def stop_duration_s(self) -> float:
        """Longest a stop of this arm takes: the plan, then the disable frames."""
        assert self.chain is not None
        return self.chain.plan.duration_s + self.chain.timing.stop_disable_s

    def bus_stats(self) -> dict[str, float | int | None] | None:
        return self.chain.stats.as_dict() if self.chain is not None else None

    # ------------------------------------------------------------------ gripper calibration steps
    def gripper_torque_mode(self) -> None:
        """The gripper becomes a pure torque source (kp = kd = 0); the arm keeps holding."""
        assert self.chain is not None
        self.chain.set_controls(self._controls(gripper_torque_mode=True))

    def push_gripper(self, torque: float) -> float:
        """Apply ``torque`` to the gripper (arm targets unchanged); returns its raw position."""
        assert self.chain is not None
        torques = np.zeros(len(self.motors))
        torques[-1] = torque
        self.chain.set_targets(self.chain.targets(), torques)
        if self.chain.fault is not None:
            raise MotorError(self.side, f"gripper calibration stopped: {self.chain.fault}")
        return float(self.chain.measured()[-1])

    def finish_calibration(self, limits: tuple[float, float]) -> None:
        """Adopt the found limits and hold the gripper where it is, position-controlled again."""
        assert self.chain is not None
        self.gripper_limits = limits
        self.gripper_calibrated = True
        self.chain.set_targets(self.chain.measured(), np.zeros(len(self.motors)))
        self.chain.set_controls(self._controls())

    def close(self) -> None:
        if self.chain is not None:
            self.chain.close()
            self.chain = None


def calibrate_grippers(arms: list[YamArmDriver]) -> None:
    """Find each gripper's stops by pushing +-0.5 Nm (i2rt's routine), all arms at once.

    A direction ends when the gripper moved less than 0.01 rad over 3 samples 50 ms apart, or
    after 2 s. Closed is the stop a positive push reaches when the direction is +1.
    """
    todo = [a for a in arms if a.needs_calibration()]
    if not todo:
        return
    for arm in todo:
        arm.gripper_torque_mode()
    found: dict[str, list[float]] = {a.side: [] for a in todo}
    for sign in (1.0, -1.0):
        history: dict[str, list[float]] = {a.side: [] for a in todo}
        done: set[str] = set()
        t0 = time.monotonic()
        while len(done) < len(todo) and time.monotonic() - t0 < CALIBRATION_MAX_S:
            for arm in arms:
                arm.touch()  # an arm that needs no calibration is held meanwhile, not abandoned
            for arm in todo:
                hist = history[arm.side]
                hist.append(arm.push_gripper(sign * CALIBRATION_TORQUE))
                if len(hist) >= 4 and max(hist[-4:]) - min(hist[-4:]) < CALIBRATION_STILL_RAD:
                    done.add(arm.side)
            time.sleep(CALIBRATION_SAMPLE_S)
        for arm in todo:
            found[arm.side].append(arm.push_gripper(0.0))
    for arm in todo:
        g = arm.gripper
        assert g is not None
        hi, lo = max(found[arm.side]), min(found[arm.side])
        if hi - lo < 0.5 * g.stroke:
            raise MotorError(
                arm.where(len(arm.motors) - 1),
                f"gripper calibration found a stroke of {hi - lo:.2f} rad, expected about {g.stroke:.2f}: "
                "is something blocking the gripper?",
            )
        arm.finish_calibration((hi, lo) if g.direction > 0 else (lo, hi))


def stop_plan(stop: StopConfig) -> StopPlan:
    """The chain's stop plan for ``safety.stop``."""
    return StopPlan(
        mode=stop.mode,
        hold_s=stop.hold_s,
        hold_stiffness=stop.hold_stiffness,
        damp_s=stop.damp_s,
        damp_kd=stop.damp_kd,
        ramp_s=stop.ramp_s,
    )

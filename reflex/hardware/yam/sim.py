"""Simulated YAM arms: seven Damiao motors per ``sim:`` channel, with a plausible joint plant.

The plant is a rough one, with gravity on the shoulder and elbow (``YAM_GRAVITY``, on by
default, configurable per joint): it is there so that commands have consequences (tracking lag,
torque saturation, an arm that falls when its torque is cut, gripper hard stops) rather than to
predict the real arm. Arm joints power up inside their limits; the gripper powers up part-open, its motor
zero at the closed stop, with hard stops one stroke apart so calibration finishes.

:class:`YamOnSimBuses` is the real :class:`YamBimanual` with its ``sim:`` buses started (faults
armed, :mod:`reflex.hardware.yam.sim_faults`) before connect and stopped after close.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reflex.can.motors import MotorType, motor_type
from reflex.can.sim.bus import SimMotorBus, StrayFrame, WireTiming
from reflex.can.sim.motor import Plant, SimMotor, SimMotorConfig
from reflex.can.sim.registry import is_sim_channel, running
from reflex.hardware.yam.arm import (
    ARM_IDS,
    ARM_MOTOR_TYPES,
    GRIPPER_ID,
    GripperSpec,
    arm_limits,
    gripper_spec,
)
from reflex.hardware.yam.robot import YamBimanual
from reflex.hardware.yam.sim_faults import arm_faults
from reflex.hardware.yam_layout import SIDES

if TYPE_CHECKING:
    from reflex.config.base import BuildContext
    from reflex.hardware.yam.config import SimFault, YamBimanualConfig

# inertia (kg m^2), viscous damping (Nm s/rad), Coulomb friction (Nm), damping-mode kd
_ARM_PLANT = (
    (0.06, 0.2, 0.3, 2.0),
    (0.08, 0.2, 0.3, 2.0),
    (0.04, 0.2, 0.3, 2.0),
    (0.010, 0.02, 0.06, 0.3),
    (0.008, 0.02, 0.06, 0.3),
    (0.006, 0.02, 0.06, 0.3),
)
STOP_BEYOND_LIMIT = 0.3  # rad: hard stops sit past the model's joint range
# gravity torque amplitude per arm joint (Nm; the joint feels -g sin q): shoulder and elbow carry
# the arm, the wrist joints little. Rough figures for a 4.3 kg arm, so that a stop that cuts the
# torque lets it fall, as a real one would.
YAM_GRAVITY = (0.0, 6.0, 3.0, 0.0, 0.0, 0.0)


def yam_sim_motors(
    gripper: str,
    seed: int = 0,
    motor_types: dict[str, MotorType] | None = None,
    initial: list[float] | None = None,
    reply_to_clear_error: bool = False,
    gravity: Sequence[float] = YAM_GRAVITY,
) -> list[SimMotor]:
    rng = random.Random(seed)
    lower, upper = arm_limits()
    motors = []
    for j, (esc, mtype) in enumerate(zip(ARM_IDS, ARM_MOTOR_TYPES, strict=True)):
        inertia, damping, coulomb, damp_kd = _ARM_PLANT[j]
        lo, hi = lower[j], upper[j]
        q0 = initial[j] if initial is not None else min(max(rng.uniform(-0.05, 0.05), lo + 0.01), hi - 0.01)
        g = gravity[j] if j < len(gravity) else 0.0
        plant = Plant(inertia, damping, coulomb, g, lo - STOP_BEYOND_LIMIT, hi + STOP_BEYOND_LIMIT, damp_kd)
        cfg = SimMotorConfig(
            esc,
            motor_type(mtype, motor_types),
            plant,
            initial_position=q0,
            reply_to_clear_error=reply_to_clear_error,
        )
        motors.append(SimMotor(cfg, seed=seed))
    spec = gripper_spec(gripper)
    if spec is not None:
        motors.append(_gripper_motor(spec, rng, seed, motor_types, initial, reply_to_clear_error))
    return motors


def _gripper_motor(
    spec: GripperSpec,
    rng: random.Random,
    seed: int,
    motor_types: dict[str, MotorType] | None,
    initial: list[float] | None,
    reply_to_clear_error: bool,
) -> SimMotor:
    closed, opened = spec.nominal_limits()
    lo, hi = min(closed, opened), max(closed, opened)
    q0 = initial[6] if initial is not None and len(initial) > 6 else lo + (hi - lo) * rng.uniform(0.3, 0.7)
    plant = Plant(5e-4, 0.02, 0.05, 0.0, lo, hi, 0.2)
    cfg = SimMotorConfig(
        GRIPPER_ID,
        motor_type(spec.motor, motor_types),
        plant,
        initial_position=q0,
        reply_to_clear_error=reply_to_clear_error,
    )
    return SimMotor(cfg, seed=seed)


def attach_or_start(
    channel: str,
    gripper: str,
    *,
    seed: int = 0,
    timing: WireTiming | None = None,
    motor_types: dict[str, MotorType] | None = None,
    stray: list[StrayFrame] | None = None,
    report_path: Path | None = None,
    reply_to_clear_error: bool = False,
    gravity: Sequence[float] = YAM_GRAVITY,
    faults: Sequence[SimFault] = (),
    gripper_calibrates: bool = False,
) -> tuple[SimMotorBus, bool]:
    """The simulated bus on ``channel``: an already running one (started by a test), or a new
    one with ``faults`` armed. Returns (bus, owned): only an owned bus is stopped by whoever
    started it here."""
    existing = running(channel)
    if existing is not None:
        return existing, False
    motors = yam_sim_motors(gripper, seed, motor_types, reply_to_clear_error=reply_to_clear_error, gravity=gravity)
    sim = SimMotorBus(channel, motors, timing=timing, seed=seed, stray=stray or [], report_path=report_path)
    arm_faults(sim, faults, gripper_calibrates)
    return sim.start(), True


TEACHING_HANDLE_FRAME = StrayFrame(0x50F, bytes((0x01, 0x00, 0x10, 0x00, 0x00, 0x00, 0, 0)), 0.01)


def start_arm_sim(
    config: YamBimanualConfig,
    side: str,
    config_dir: Path,
    motor_types: dict[str, MotorType],
) -> tuple[SimMotorBus, bool]:
    """The simulated bus of one arm's ``sim:`` channel, built from ``config.sim`` with the faults
    asked for on that arm, armed by the simulator itself (:mod:`reflex.hardware.yam.sim_faults`).
    Returns (bus, owned) as :func:`attach_or_start`; a bus a test started is left as it is."""
    arm = config.arm(side)
    opts = config.sim
    report = None
    if opts.report is not None:
        name = arm.channel.replace(":", "_").replace("/", "_")
        report = (config_dir / opts.report).resolve() / f"{name}.json"
    timing = WireTiming(
        enabled=opts.wire_timing,
        bitrate=config.bitrate,
        latency_s=opts.latency_ms / 1e3,
        jitter_s=opts.jitter_ms / 1e3,
    )
    return attach_or_start(
        arm.channel,
        arm.gripper,
        seed=opts.seed + (0 if side == "left" else 1),
        timing=timing,
        motor_types=motor_types,
        stray=[TEACHING_HANDLE_FRAME] if opts.stray_frames else None,
        report_path=report,
        reply_to_clear_error=opts.reply_to_clear_error,
        gravity=opts.gravity,
        faults=[f for f in opts.faults if f.arm == side],
        gripper_calibrates=gripper_spec(arm.gripper) is not None and arm.gripper_limits is None,
    )


class YamOnSimBuses(YamBimanual):
    """The real YAM driver on ``sim:`` channels: the simulated buses (built from ``config.sim``,
    faults armed) start before the driver connects and stop after it closes. The driver itself
    knows nothing of them."""

    def __init__(self, config: YamBimanualConfig, ctx: BuildContext) -> None:
        super().__init__(config, ctx)
        self.simulated = all(is_sim_channel(config.arm(side).channel) for side in SIDES)
        self._owned: list[SimMotorBus] = []

    def connect(self) -> None:
        try:
            for arm in self.arms:
                if is_sim_channel(arm.arm.channel):
                    table = {m.motor.name: m.motor for m in arm.motors}
                    sim, owned = start_arm_sim(self.config, arm.side, self.ctx.config_dir, table)
                    if owned:
                        self._owned.append(sim)
        except BaseException:
            self.close()
            raise
        super().connect()

    def close(self) -> None:
        try:
            super().close()
        finally:
            for sim in self._owned:
                with contextlib.suppress(Exception):
                    sim.stop()
            self._owned = []

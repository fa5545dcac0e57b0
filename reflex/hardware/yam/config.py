"""Config of ``hardware.kind: yam_bimanual``: two YAM arms, one CAN bus each."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from reflex.config.base import BuildContext, StrictModel
from reflex.config.bounds import sensible
from reflex.hardware.base import HardwareSpec
from reflex.hardware.yam.arm import GripperKind, Variant
from reflex.hardware.yam_layout import SIDES, yam_arm_layout
from reflex.ports import Hardware, JointLayout

FaultKind = Literal[
    "over_voltage",
    "under_voltage",
    "over_current",
    "mos_over_temperature",
    "rotor_over_temperature",
    "overload",
    "silent",
    "drop_replies",
    "bus_off",
]


class YamArmConfig(StrictModel):
    """One arm: its CAN channel and its gripper."""

    channel: str = Field(
        description="CAN interface of this arm (e.g. can0, can_follower_l), or 'sim:<name>' for a "
        "simulated bus of seven Damiao motors in this process (no hardware needed)."
    )
    gripper: GripperKind = Field(
        "linear_4310", description="Gripper on motor 7: linear_4310, linear_3507, crank_4310 or no_gripper."
    )
    gripper_limits: tuple[float, float] | None = Field(
        None,
        description="[closed, open] gripper motor positions (rad). Set to skip the calibration that "
        "apply_actions otherwise runs after enabling (a +-0.5 Nm push against each stop).",
    )
    interface: str = Field("socketcan", description="python-can interface for a real channel.")

    @model_validator(mode="after")
    def _limits(self) -> YamArmConfig:
        if self.gripper_limits is not None:
            if self.gripper == "no_gripper":
                raise ValueError("gripper_limits given but gripper is no_gripper")
            if abs(self.gripper_limits[0] - self.gripper_limits[1]) < 0.1:
                raise ValueError("gripper_limits: closed and open must differ by at least 0.1 rad")
        if not self.channel.strip():
            raise ValueError("channel must not be empty")
        return self


class MotorRange(StrictModel):
    """Override of a motor type's MIT scaling (must match the motor's registers 21-23)."""

    pmax: float | None = Field(None, gt=0)
    vmax: float | None = Field(None, gt=0)
    tmax: float | None = Field(None, gt=0)


class SimFault(StrictModel):
    """A fault a simulated motor develops during the run (sim channels only)."""

    arm: Literal["left", "right"]
    joint: int = Field(ge=1, le=7, description="Motor id 1-7 (7 = gripper).")
    kind: FaultKind
    at_s: float = Field(0.0, ge=0, description="Seconds after the moment given by 'after'.")
    after: Literal["start", "enable"] = Field(
        "start",
        description="Count from the bus start, or from the end of bring-up as the simulator sees it "
        "on the wire: the first enable frame (FC) or, when the gripper is calibrated at enable (no "
        "gripper_limits), its first position-control frame (kp > 0) after the calibration pushes.",
    )
    count: int = Field(1, ge=1, description="Replies to drop (kind drop_replies).")


class YamSimOptions(StrictModel):
    """Settings of simulated buses; ignored for real channels."""

    wire_timing: bool = Field(True, description="Model 1 Mbit/s wire occupancy and reply latency.")
    latency_ms: float = Field(0.1, ge=0, description="Motor reply latency after a request.")
    jitter_ms: float = Field(0.2, ge=0, description="Extra uniform random reply latency.")
    seed: int = Field(0, description="Seed of initial poses and jitter.")
    reply_to_clear_error: bool = Field(False, description="Whether simulated motors answer FB.")
    stray_frames: bool = Field(False, description="Add a teaching-handle frame on 0x50F every 10 ms.")
    report: str | None = Field(
        None,
        description="Directory (relative to this file) where each simulated bus writes its final "
        "motor states as <channel>.json when the session ends.",
    )
    faults: list[SimFault] = Field(default_factory=list)
    gravity: list[float] = Field(
        [0.0, 6.0, 3.0, 0.0, 0.0, 0.0],
        min_length=6,
        max_length=6,
        description="Gravity torque amplitude per arm joint (Nm; the joint feels -g sin q). "
        "All zeros turns gravity off.",
    )


class YamBimanualConfig(StrictModel):
    """Two I2RT YAM arms. State and action: [left joint1..6, left gripper, right ...]; grippers
    are normalised, 0 = closed, 1 = open."""

    left: YamArmConfig
    right: YamArmConfig
    variant: Variant = Field("yam", description="yam, yam_pro or yam_ultra (joint4 kp 40).")
    bus_rate_hz: float = Field(
        250.0,
        gt=0,
        le=1000,
        description="Motor-bus cycle rate per arm. Each cycle commands and reads every motor; the "
        "session's control_rate_hz only sets how often the target changes.",
    )
    bitrate: int = Field(1_000_000, description="CAN bitrate (YAM: 1 Mbit/s classic CAN).")
    strategy: Literal["pipelined", "sequential"] = Field(
        "pipelined", description="pipelined: send to every motor, then collect; sequential: one by one."
    )
    reply_timeout_ms: float = Field(
        2.0, gt=0, json_schema_extra=sensible(None, 50, "a motor answers in well under a millisecond; "
                                              "50 ms of waiting is a dozen lost bus cycles"),
        description="Per-motor reply timeout beyond wire time.",
    )
    max_retries: int = Field(1, ge=0, le=5, description="Resends to a silent motor within one cycle.")
    reply_budget_ms: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="A motor without a reply for longer than this (while the arms are live: both "
        "arms safe-stop on the same bus cycle). Default: half the session's control period, so the "
        "first stop frame goes out within one control period of a motor falling silent.",
    )
    watchdog_ms: float = Field(
        400.0,
        ge=50,
        le=1000,
        description="Motor watchdog (TIMEOUT register), written to every motor and read back before "
        "enabling: a motor that does not confirm it refuses bring-up.",
    )
    limit_margin: float = Field(
        0.02,
        ge=0,
        le=0.15,
        description="Bring-up refuses a joint further than this outside its limits, naming the joint "
        "and the distance; closer, the first commands slew it inside (speed and acceleration "
        "limited), never a jump.",
    )
    max_speed: float = Field(
        3.0, gt=0, json_schema_extra=sensible(None, 10, "the motors' velocity range (VMAX) is 10 rad/s"),
        description="Slew limit of commanded arm positions (rad/s).",
    )
    max_accel: float = Field(
        10.0, gt=0, le=200, description="Acceleration limit of commanded arm positions (rad/s^2)."
    )
    max_jerk: float | None = Field(
        None, gt=0, description="Optional jerk limit of commanded arm positions (rad/s^3)."
    )
    gripper_max_speed: float = Field(
        20.0, gt=0, le=50, description="Slew limit of the commanded gripper motor position (rad/s)."
    )
    gripper_max_accel: float = Field(
        200.0, gt=0, le=2000, description="Acceleration limit of the commanded gripper motor position (rad/s^2)."
    )
    max_error: float = Field(
        0.2, gt=0, json_schema_extra=sensible(None, 1.0, "a tracking error of a radian means the arm is "
                                              "blocked or falling"),
        description="Largest distance between a commanded and the measured position (rad)."
    )
    gripper_max_error: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Largest distance between commanded and measured gripper position, as a fraction "
        "of the stroke (once stalled, the band shrinks further to limit the squeeze force).",
    )
    runner_timeout_s: float = Field(
        0.3, gt=0, json_schema_extra=sensible(None, 2.0, "the arm keeps its last command while the "
                                              "runner is silent"),
        description="Safe-stop if the runner neither reads nor commands for this long."
    )
    clear_comm_loss: bool = Field(
        True,
        description="At bring-up, clear a latched loss-of-communication (0xD, left by an earlier "
        "session's watchdog) before enabling. Any other fault always refuses.",
    )
    home_pose: list[float] | None = Field(
        None,
        description="Pose driven to on a clean stop when safety.home_on_stop is set (apply_actions "
        "only); default: arm joints at 0, grippers open.",
    )
    home_speed: float = Field(0.5, gt=0, le=3.0, description="Joint speed while going home (rad/s).")
    home_timeout_s: float = Field(
        20.0, gt=0, le=120, description="Homing that has not arrived after this long stops (safe stop)."
    )
    motor_ranges: dict[str, MotorRange] = Field(
        default_factory=dict, description="Per motor type (DM4340, ...) MIT range overrides."
    )
    sim: YamSimOptions = Field(default_factory=YamSimOptions)

    @model_validator(mode="after")
    def _checks(self) -> YamBimanualConfig:
        if self.left.channel == self.right.channel:
            raise ValueError(f"left and right use the same channel '{self.left.channel}': one bus per arm")
        from reflex.can.bus import check_bus_load

        motors = max(6 if a.gripper == "no_gripper" else 7 for a in (self.left, self.right))
        check_bus_load(self.bus_rate_hz, motors, self.bitrate)
        dim = sum(6 if a.gripper == "no_gripper" else 7 for a in (self.left, self.right))
        if self.home_pose is not None and len(self.home_pose) != dim:
            raise ValueError(f"home_pose has {len(self.home_pose)} entries, the arms have {dim} joints")
        return self

    def arm(self, side: str) -> YamArmConfig:
        return self.left if side == "left" else self.right


class YamBimanualSpec(HardwareSpec):
    """Two I2RT YAM arms over CAN (Damiao motors, MIT mode), or simulated ones on ``sim:`` channels."""

    kind: Literal["yam_bimanual"] = "yam_bimanual"
    config: YamBimanualConfig

    def layout(self) -> JointLayout:
        arms = [yam_arm_layout(s, self.config.arm(s).gripper != "no_gripper") for s in SIDES]
        return JointLayout(
            tuple(n for a in arms for n in a.names),
            np.concatenate([a.lower for a in arms]),
            np.concatenate([a.upper for a in arms]),
            tuple(u for a in arms for u in a.units or ()),
        )

    def build(self, ctx: BuildContext) -> Hardware:
        try:
            import can  # noqa: F401
        except ImportError:
            from reflex.errors import SetupError

            raise SetupError("hardware", "yam_bimanual needs python-can: pip install 'reflex-runtime[can]'") from None
        from reflex.can.sim.registry import is_sim_channel

        if any(is_sim_channel(self.config.arm(s).channel) for s in SIDES):
            from reflex.hardware.yam.sim import YamOnSimBuses

            return YamOnSimBuses(self.config, ctx)
        from reflex.hardware.yam.robot import YamBimanual

        return YamBimanual(self.config, ctx)

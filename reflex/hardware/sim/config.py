"""Config of the simulated bimanual robot."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from reflex.config.base import BuildContext, StrictModel
from reflex.config.bounds import sensible
from reflex.hardware.base import HardwareSpec
from reflex.hardware.yam_layout import yam_bimanual_layout, yam_home_pose
from reflex.ports import Hardware, JointLayout


class SimFaults(StrictModel):
    """Deterministic fault injection, so CI can prove every error path ends in a safe stop."""

    observe_at_step: int | None = Field(None, ge=0, description="read_state raises at this step.")
    apply_at_step: int | None = Field(None, ge=0, description="apply raises at this step.")
    safe_stop_fails: bool = Field(False, description="safe_stop raises (reported, exit 4).")
    stall_at_step: int | None = Field(
        None, ge=0, description="apply blocks for stall_s at this apply (a runner freeze)."
    )
    stall_s: float = Field(0.3, ge=0, le=10, description="How long the injected stall lasts.")
    connect_delay_s: float = Field(
        0.0, ge=0, json_schema_extra=sensible(None, 600, "a test fault, not a wait"),
        description="Extra time spent in connect.",
    )


class SimConfig(StrictModel):
    robot: Literal["yam_bimanual", "franka"] = Field(
        "yam_bimanual",
        description="Joint layout: yam_bimanual (2 x 6 joints + gripper, 14-D, ALOHA's order) or franka "
        "(7 joints + gripper, 8-D, DROID's order).",
    )
    initial_pose: list[float] | None = Field(
        None, min_length=1, description="Start pose, one value per joint; default: home (grippers open)."
    )
    time_constant_s: float = Field(
        0.05,
        gt=0,
        json_schema_extra=sensible(None, 10, "a joint that needs minutes to follow is not a robot"),
        description="First-order lag of each joint towards its command.",
    )
    max_velocity: float = Field(
        3.0,
        gt=0,
        json_schema_extra=sensible(None, 10, "the YAM motors' velocity range (VMAX) is 10 rad/s"),
        description="Joint speed limit (rad/s or gripper/s).",
    )
    faults: SimFaults = SimFaults()

    @field_validator("initial_pose")
    @classmethod
    def _pose_fits(cls, pose: list[float] | None, info: ValidationInfo) -> list[float] | None:
        robot = info.data.get("robot", "yam_bimanual")
        dim = sim_layout(robot).dim
        if pose is not None and len(pose) != dim:
            raise ValueError(f"{len(pose)} values; {robot} has {dim} joints")
        return pose


def sim_layout(robot: str) -> JointLayout:
    if robot == "franka":
        from reflex.hardware.franka_layout import franka_layout

        return franka_layout()
    return yam_bimanual_layout()


def sim_home(robot: str) -> np.ndarray:
    if robot == "franka":
        from reflex.hardware.franka_layout import franka_home_pose

        return franka_home_pose()
    return yam_home_pose()


class SimHardwareSpec(HardwareSpec):
    """Two simulated YAM arms (6 joints + gripper each, 14-D), or one Franka arm (7 + gripper, 8-D)."""

    kind: Literal["sim"] = "sim"
    config: SimConfig = SimConfig()

    def layout(self) -> JointLayout:
        return sim_layout(self.config.robot)

    def build(self, ctx: BuildContext) -> Hardware:
        from reflex.hardware.sim.robot import SimRobot

        return SimRobot(self.config)

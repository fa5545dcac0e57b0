"""Config of the simulated bimanual robot."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reflex.config.base import BuildContext, StrictModel
from reflex.config.bounds import sensible
from reflex.hardware.base import HardwareSpec
from reflex.hardware.yam_layout import yam_bimanual_layout
from reflex.ports import Hardware, JointLayout


class SimFaults(StrictModel):
    """Deterministic fault injection, so CI can prove every error path ends in a safe stop."""

    observe_at_step: int | None = Field(None, ge=0, description="read_state raises at this step.")
    apply_at_step: int | None = Field(None, ge=0, description="apply raises at this step.")
    safe_stop_fails: bool = Field(False, description="safe_stop raises (reported, exit 4).")
    connect_delay_s: float = Field(
        0.0, ge=0, json_schema_extra=sensible(None, 600, "a test fault, not a wait"),
        description="Extra time spent in connect.",
    )


class SimConfig(StrictModel):
    initial_pose: list[float] | None = Field(
        None, min_length=14, max_length=14, description="Start pose; default: home (grippers open)."
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


class SimHardwareSpec(HardwareSpec):
    """Two simulated YAM arms (6 joints + gripper each): 14-D state and action."""

    kind: Literal["sim"] = "sim"
    config: SimConfig = SimConfig()

    def layout(self) -> JointLayout:
        return yam_bimanual_layout()

    def build(self, ctx: BuildContext) -> Hardware:
        from reflex.hardware.sim.robot import SimRobot

        return SimRobot(self.config)

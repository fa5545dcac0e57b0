"""What a YAM arm is made of: motors, ids, gains and grippers (I2RT's published configuration).

Joint limits come from :mod:`reflex.hardware.yam_layout` (shared with the sim robot); this module
adds the motor side. All joint directions are +1 and offsets 0 on the standard arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from reflex.hardware.yam_layout import ARM_JOINTS, ARM_LOWER, ARM_UPPER

Variant = Literal["yam", "yam_pro", "yam_ultra"]
GripperKind = Literal["linear_4310", "linear_3507", "crank_4310", "no_gripper"]

ARM_MOTOR_TYPES = ("DM4340", "DM4340", "DM4340", "DM4310", "DM4310", "DM4310")
ARM_IDS = (1, 2, 3, 4, 5, 6)
GRIPPER_ID = 7
ARM_KP: dict[str, tuple[float, ...]] = {
    "yam": (80.0, 80.0, 80.0, 10.0, 10.0, 10.0),
    "yam_pro": (80.0, 80.0, 80.0, 40.0, 10.0, 10.0),
    "yam_ultra": (80.0, 80.0, 80.0, 40.0, 10.0, 10.0),
}
ARM_KD = (5.0, 5.0, 5.0, 1.5, 1.5, 1.5)
LIMIT_MARGIN = 0.15  # i2rt widens the model's joint ranges by this much for commands
GRIPPER_FORCE_N = 50.0  # i2rt's default gripper force limit


@dataclass(frozen=True)
class GripperSpec:
    name: str
    motor: str
    kp: float
    kd: float
    direction: int  # +1: a positive torque closes, so closed is the larger raw position
    stroke: float  # motor rad between the hard stops
    jaw_stroke_m: float
    clog_torque: float  # Nm: above this at low speed the gripper is squeezing something
    clog_speed: float  # rad/s

    @property
    def hold_torque(self) -> float:
        """Torque that squeezes with GRIPPER_FORCE_N, as i2rt's force limiter computes it."""
        return GRIPPER_FORCE_N * self.jaw_stroke_m / self.stroke + 0.3

    def nominal_limits(self) -> tuple[float, float]:
        """(closed, open) in raw motor rad when the motor's zero was set at the closed stop."""
        return (0.0, -self.direction * self.stroke)


GRIPPERS: dict[str, GripperSpec] = {
    "linear_4310": GripperSpec("linear_4310", "DM4310", 20.0, 0.5, 1, 6.57, 0.096, 0.5, 0.3),
    "linear_3507": GripperSpec("linear_3507", "DM3507", 10.0, 0.3, 1, 6.57, 0.096, 0.5, 0.3),
    "crank_4310": GripperSpec("crank_4310", "DM4310", 20.0, 0.5, 1, math.radians(170.0 - 8.0), 0.071, 0.5, 0.2),
}


def gripper_spec(kind: str) -> GripperSpec | None:
    return GRIPPERS.get(kind)


def joint_names(with_gripper: bool) -> tuple[str, ...]:
    return (*ARM_JOINTS, "gripper") if with_gripper else ARM_JOINTS


def arm_limits() -> tuple[tuple[float, ...], tuple[float, ...]]:
    return ARM_LOWER, ARM_UPPER

"""The I2RT YAM bimanual joint layout: names and limits shared by the real arms and the sim.

Arm limits are the MJCF ranges of the standard ``yam`` arm (radians). The gripper is a
normalised command: 0 = closed, 1 = open.
"""

from __future__ import annotations

import numpy as np

from reflex.ports import JointLayout

ARM_JOINTS = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
ARM_LOWER = (-2.61799, 0.0, 0.0, -1.69297, -1.5708, -2.0944)
ARM_UPPER = (3.14159, 3.66519, 3.14159, 1.5708, 1.5708, 2.0944)
GRIPPER_RANGE = (0.0, 1.0)
SIDES = ("left", "right")


def yam_arm_layout(side: str, with_gripper: bool = True) -> JointLayout:
    names = [f"{side}_{j}" for j in ARM_JOINTS]
    lower, upper = list(ARM_LOWER), list(ARM_UPPER)
    units = ["rad"] * len(ARM_JOINTS)
    if with_gripper:
        names.append(f"{side}_gripper")
        lower.append(GRIPPER_RANGE[0])
        upper.append(GRIPPER_RANGE[1])
        units.append("normalized")
    return JointLayout(tuple(names), np.array(lower), np.array(upper), tuple(units))


def yam_bimanual_layout() -> JointLayout:
    """14-D: ``[left joint1..6, left gripper, right joint1..6, right gripper]``."""
    arms = [yam_arm_layout(side) for side in SIDES]
    return JointLayout(
        tuple(n for a in arms for n in a.names),
        np.concatenate([a.lower for a in arms]),
        np.concatenate([a.upper for a in arms]),
        tuple(u for a in arms for u in a.units or ()),
    )


def yam_home_pose() -> np.ndarray:
    """Arm joints at zero (their power-up pose), grippers open."""
    pose = np.zeros(14)
    pose[6] = pose[13] = 1.0
    return pose

"""A Franka Panda arm with a gripper, in DROID's order: 7 joints (rad) + gripper (0 open .. 1 closed).

Joint limits are Franka's published ranges for the Panda; the home pose is its usual "ready" pose.
"""

from __future__ import annotations

import numpy as np

from reflex.ports import JointLayout

LOWER = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973, 0.0)
UPPER = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973, 1.0)
HOME = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.0)


def franka_layout() -> JointLayout:
    names = (*(f"joint{i}" for i in range(1, 8)), "gripper")
    return JointLayout(names, np.array(LOWER), np.array(UPPER), ("rad",) * 7 + ("normalized",))


def franka_home_pose() -> np.ndarray:
    return np.array(HOME)

"""``kind: sim`` camera: renders the simulated robot's joint positions as bars.

Each of the 14 joints is a vertical bar whose height is its position within its limits (left arm
blue, right arm orange), so a recording of a sim session is meaningful to look at.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from reflex.cameras.base import FRAME_SIDE, CameraSpec
from reflex.cameras.paced import PacedCamera
from reflex.config.base import BuildContext
from reflex.ports import Camera, JointLayout

LEFT_COLOUR = np.array([60, 120, 230], dtype=np.uint8)
RIGHT_COLOUR = np.array([240, 150, 40], dtype=np.uint8)
BACKGROUND = 24


class SimCameraSpec(CameraSpec):
    """A camera that films the simulated robot (requires ``hardware.kind: sim``)."""

    kind: Literal["sim"] = "sim"
    width: int | None = Field(128, gt=0, json_schema_extra=FRAME_SIDE)
    height: int | None = Field(96, gt=0, json_schema_extra=FRAME_SIDE)
    fps: float = Field(30.0, gt=0, le=1000, description="Frames per second rendered.")

    def build(self, name: str, ctx: BuildContext) -> Camera:
        from reflex.hardware.sim.robot import SimRobot

        if not isinstance(ctx.hardware, SimRobot):
            raise TypeError(f"camera '{name}': kind 'sim' films the sim robot only")
        return SimCamera(name, ctx.hardware, self.width or 128, self.height or 96, self.fps)


def render_joint_bars(q: np.ndarray, layout: JointLayout, width: int, height: int) -> np.ndarray:
    """The image a sim camera shows for pose ``q``."""
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    n = layout.dim
    span = np.where(layout.upper > layout.lower, layout.upper - layout.lower, 1.0)
    level = np.clip((q - layout.lower) / span, 0.0, 1.0)
    bar_w = max(1, width // n)
    for i in range(n):
        top = height - round(level[i] * (height - 1)) - 1
        colour = LEFT_COLOUR if i < n // 2 else RIGHT_COLOUR
        image[top:, i * bar_w : i * bar_w + max(1, bar_w - 1)] = colour
    return image


class SimCamera(PacedCamera):
    """Renders on its own thread (see :class:`PacedCamera`); the loop only takes the newest frame."""

    def __init__(self, name: str, robot: object, width: int, height: int, fps: float) -> None:
        from reflex.hardware.sim.robot import SimRobot

        assert isinstance(robot, SimRobot)
        self._robot = robot
        self._size = (width, height)
        super().__init__(name, fps, self._draw)

    def _draw(self) -> np.ndarray:
        return render_joint_bars(self._robot.positions(), self._robot.layout, *self._size)

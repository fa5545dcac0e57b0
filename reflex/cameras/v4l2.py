"""``kind: v4l2``: a USB/CSI camera read directly (no publisher), through PyAV or OpenCV.

Use it when only this session needs the camera; use ``shm`` + ``reflex camera publish`` when
several processes share it. Capture times come from the driver's buffer timestamps when they
are on CLOCK_MONOTONIC (the UVC default), otherwise from the arrival time.
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import Field, field_validator

from reflex.cameras.base import FRAME_SIDE, CameraSpec
from reflex.config.base import BuildContext
from reflex.ports import Camera


class V4L2CameraSpec(CameraSpec):
    """A V4L2 device opened by the session itself."""

    kind: Literal["v4l2"] = "v4l2"
    device: str = Field("/dev/video0", description="Device path, or its index (0 = /dev/video0).")
    width: int | None = Field(
        640, gt=0, json_schema_extra=FRAME_SIDE, description="Requested width; another delivered size fails."
    )
    height: int | None = Field(
        480, gt=0, json_schema_extra=FRAME_SIDE, description="Requested height; another delivered size fails."
    )
    fps: float | None = Field(None, gt=0, description="Requested frame rate (default: the driver's).")
    fourcc: str | None = Field("MJPG", description="Requested pixel format (MJPG, YUYV, H264, ...).")
    backend: Literal["auto", "pyav", "opencv"] = Field(
        "auto", description="Decoder: PyAV (the video extra) or OpenCV; auto prefers PyAV."
    )

    @field_validator("color_order")
    @classmethod
    def _decoded_is_rgb(cls, value: str) -> str:
        if value != "rgb":
            raise ValueError("v4l2 frames are decoded straight to RGB; color_order applies to shm channels")
        return value

    def build(self, name: str, ctx: BuildContext) -> Camera:
        from reflex.cameras.sources.base import FrameSource
        from reflex.cameras.sources.factory import v4l2_source
        from reflex.cameras.threaded import SourceCamera

        def make(stop: threading.Event) -> FrameSource:
            return v4l2_source(
                self.device, width=self.width, height=self.height, fps=self.fps,
                fourcc=self.fourcc, backend=self.backend,
            )  # fmt: skip

        return SourceCamera(name, make, (self.width, self.height))

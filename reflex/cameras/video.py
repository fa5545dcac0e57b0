"""``kind: video``: a video file played as a camera, in real time at its own frame rate.

For bring-up and demos without hardware. Each frame's capture time is the moment it is due, so
age and skew checks behave as with a live camera. ``resize: true`` scales in the decoder (the
same pass that converts to RGB); otherwise a size other than width/height fails at start.
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import Field, field_validator, model_validator

from reflex.cameras.base import CameraSpec
from reflex.config.base import BuildContext
from reflex.ports import Camera


class VideoCameraSpec(CameraSpec):
    """A video file (any format FFmpeg reads) as a camera."""

    kind: Literal["video"] = "video"
    path: str = Field(description="Video file, relative to this config file.")
    loop: bool = Field(True, description="Start again at the end; otherwise the frames stop (and go stale).")
    fps: float | None = Field(None, gt=0, description="Playback rate (default: the file's).")
    resize: bool = Field(False, description="Scale frames to width x height instead of failing.")

    @field_validator("color_order")
    @classmethod
    def _decoded_is_rgb(cls, value: str) -> str:
        if value != "rgb":
            raise ValueError("video frames are decoded straight to RGB; color_order applies to shm channels")
        return value

    @model_validator(mode="after")
    def _resize_needs_size(self) -> VideoCameraSpec:
        if self.resize and (self.width is None or self.height is None):
            raise ValueError("resize: true needs width and height")
        return self

    def build(self, name: str, ctx: BuildContext) -> Camera:
        from reflex.cameras.sources.av_sources import VideoFileSource
        from reflex.cameras.threaded import SourceCamera

        path = ctx.resolve_path(self.path)
        size = (self.width, self.height) if self.resize else (None, None)

        def make(stop: threading.Event) -> VideoFileSource:
            return VideoFileSource(
                path, fps=self.fps, loop=self.loop, width=size[0], height=size[1], stop=stop
            )

        return SourceCamera(name, make, (self.width, self.height))

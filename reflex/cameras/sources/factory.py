"""Turn ``--source`` text (or a camera block) into a FrameSource."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Literal

from reflex.cameras.sources.base import FrameSource, SourceError

SOURCE_FORMS = "'pattern', 'video:PATH', 'v4l2:DEVICE' (a bare /dev/videoN or an existing file also works)"
Backend = Literal["auto", "pyav", "opencv"]


def open_source(
    spec: str,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    loop: bool = True,
    fourcc: str | None = "MJPG",
    backend: Backend = "auto",
    stop: threading.Event | None = None,
) -> FrameSource:
    """The source named by ``spec`` (not opened yet)."""
    kind, _, arg = spec.partition(":")
    if spec == "pattern":
        from reflex.cameras.sources.pattern import PatternSource

        return PatternSource(width or 640, height or 480, 30.0 if fps is None else fps, stop)
    if kind == "video" and arg:
        return _video(arg, width, height, fps, loop, stop)
    if kind == "v4l2" and arg:
        return v4l2_source(arg, width=width, height=height, fps=fps, fourcc=fourcc, backend=backend)
    if spec.startswith("/dev/video"):
        return v4l2_source(spec, width=width, height=height, fps=fps, fourcc=fourcc, backend=backend)
    if Path(spec).is_file():
        return _video(spec, width, height, fps, loop, stop)
    raise ValueError(f"--source {spec!r}: expected {SOURCE_FORMS}")


def _video(
    path: str,
    width: int | None,
    height: int | None,
    fps: float | None,
    loop: bool,
    stop: threading.Event | None,
) -> FrameSource:
    from reflex.cameras.sources.av_sources import VideoFileSource

    return VideoFileSource(path, fps=fps, loop=loop, width=width, height=height, stop=stop)


def v4l2_source(
    device: str,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    fourcc: str | None = "MJPG",
    backend: Backend = "auto",
) -> FrameSource:
    """A V4L2 device through PyAV (preferred) or OpenCV (``backend: opencv``, or auto without PyAV)."""
    if device.isdigit():
        device = f"/dev/video{device}"
    if backend == "auto":
        if importlib.util.find_spec("av") is not None:
            backend = "pyav"
        elif importlib.util.find_spec("cv2") is not None:
            backend = "opencv"
        else:
            raise SourceError(
                f"v4l2 device {device}: needs PyAV (pip install 'reflex-runtime[video]') or OpenCV"
            )
    if backend == "opencv":
        from reflex.cameras.sources.opencv_source import OpenCVV4L2Source

        return OpenCVV4L2Source(device, width=width, height=height, fps=fps, fourcc=fourcc)
    from reflex.cameras.sources.av_sources import V4L2Source

    return V4L2Source(device, width=width, height=height, fps=fps, fourcc=fourcc)

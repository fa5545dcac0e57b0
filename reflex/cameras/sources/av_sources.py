"""Video files and V4L2 devices through PyAV (``pip install 'reflex-runtime[video]'``).

Colour conversion happens once, in the decoder's scaler (``to_ndarray(format="rgb24")``), which
can also resize in the same pass when a width/height is requested.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from reflex.cameras.sources.base import Pacer, SourceError, SourceInfo

FOURCC_TO_FFMPEG = {"MJPG": "mjpeg", "YUYV": "yuyv422", "H264": "h264", "NV12": "nv12"}
# A device timestamp further than this from "now" is not CLOCK_MONOTONIC: use arrival time.
PLAUSIBLE_TIMESTAMP_S = 1.0


def import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise SourceError(
            "PyAV is not installed: pip install 'reflex-runtime[video]' (needed for video files "
            "and V4L2 devices)"
        ) from exc
    return av


class VideoFileSource:
    """A video file played in real time at its own frame rate (or ``fps``), looped by default."""

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | None = None,
        loop: bool = True,
        width: int | None = None,
        height: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.path = Path(path)
        self.loop = loop
        self._fps_override = fps
        self._size = (width, height)
        self._stop = stop or threading.Event()
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._pacer: Pacer | None = None
        self._decoded = 0
        self.info: SourceInfo | None = None

    def open(self) -> SourceInfo:
        av = import_av()
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")
        stream = self._open_container(av)
        native_w, native_h = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(self._fps_override or (float(rate) if rate else 0.0) or 30.0)
        width, height = self._size[0] or native_w, self._size[1] or native_h
        self._size = (width, height)
        self._pacer = Pacer(fps, self._stop)
        self.info = SourceInfo(width, height, fps, f"video {self.path.name}")
        return self.info

    def _open_container(self, av: Any) -> Any:
        try:
            self._container = av.open(str(self.path))
        except Exception as exc:  # PyAV raises its own error hierarchy (av.error.*)
            raise SourceError(f"video file {self.path}: cannot open: {exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"video file {self.path} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = iter(self._container.decode(stream))
        return stream

    def read(self) -> tuple[np.ndarray, float] | None:
        assert self._frames is not None and self._pacer is not None, "open() first"
        frame = next(self._frames, None)
        if frame is None:
            if not self.loop or self._decoded == 0:
                return None
            self._container.close()
            self._open_container(import_av())  # reopening is the one loop that works for every format
            frame = next(self._frames, None)
            if frame is None:
                return None
        self._decoded += 1
        width, height = self._size
        image = frame.to_ndarray(format="rgb24", width=width, height=height)
        if not self._pacer.wait():
            return None
        return image, time.monotonic()  # a file frame is "captured" when it is due

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class V4L2Source:
    """A V4L2 device (``/dev/videoN``) through PyAV's v4l2 demuxer; capture times from the driver."""

    def __init__(
        self,
        device: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = "MJPG",
    ) -> None:
        self.device = device
        self._request = (width, height, fps, fourcc)
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self.timestamps = "unknown"  # "device" once driver timestamps proved monotonic, else "arrival"

    def open(self) -> SourceInfo:
        av = import_av()
        width, height, fps, fourcc = self._request
        options = {"timestamps": "default"}  # keep the driver's (monotonic) buffer timestamps
        if width and height:
            options["video_size"] = f"{width}x{height}"
        if fps:
            options["framerate"] = f"{fps:g}"
        if fourcc:
            options["input_format"] = FOURCC_TO_FFMPEG.get(fourcc.upper(), fourcc.lower())
        if not Path(self.device).exists():
            raise SourceError(f"v4l2 device {self.device} does not exist")
        try:
            self._container = av.open(self.device, format="v4l2", options=options)
        except Exception as exc:
            raise SourceError(f"v4l2 device {self.device}: cannot open with {options}: {exc}") from exc
        stream = self._container.streams.video[0]
        self._frames = iter(self._container.decode(stream))
        rate = float(stream.average_rate) if stream.average_rate else float(fps or 0.0)
        w, h = stream.codec_context.width, stream.codec_context.height
        return SourceInfo(w, h, rate, f"v4l2 {self.device} (pyav)")

    def read(self) -> tuple[np.ndarray, float] | None:
        assert self._frames is not None, "open() first"
        frame = next(self._frames, None)
        arrival = time.monotonic()
        if frame is None:
            return None
        return frame.to_ndarray(format="rgb24"), self._capture_time(frame, arrival)

    def _capture_time(self, frame: Any, arrival: float) -> float:
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base)
            if 0.0 <= arrival - t <= PLAUSIBLE_TIMESTAMP_S:
                self.timestamps = "device"
                return t
        self.timestamps = "arrival"
        return arrival

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

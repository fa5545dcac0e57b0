"""A V4L2 device through OpenCV, for hosts that have OpenCV but not PyAV. Never required."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from reflex.cameras.sources.av_sources import PLAUSIBLE_TIMESTAMP_S
from reflex.cameras.sources.base import SourceError, SourceInfo


class OpenCVV4L2Source:
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
        self._cap: Any = None
        self._cv2: Any = None
        self.timestamps = "unknown"

    def open(self) -> SourceInfo:
        try:
            import cv2
        except ImportError as exc:
            raise SourceError("backend 'opencv' needs OpenCV: pip install opencv-python-headless") from exc
        if not Path(self.device).exists():
            raise SourceError(f"v4l2 device {self.device} does not exist")
        self._cv2 = cv2
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise SourceError(f"v4l2 device {self.device}: OpenCV cannot open it")
        width, height, fps, fourcc = self._request
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*fourcc.upper()[:4]))
        if width and height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        self._cap = cap
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return SourceInfo(w, h, float(cap.get(cv2.CAP_PROP_FPS) or 0.0), f"v4l2 {self.device} (opencv)")

    def read(self) -> tuple[np.ndarray, float] | None:
        ok, bgr = self._cap.read()
        arrival = time.monotonic()
        if not ok:
            return None
        # OpenCV's V4L2 backend reports the driver's buffer timestamp (monotonic ms) here.
        t = float(self._cap.get(self._cv2.CAP_PROP_POS_MSEC)) / 1e3
        if 0.0 <= arrival - t <= PLAUSIBLE_TIMESTAMP_S:
            self.timestamps = "device"
        else:
            t, self.timestamps = arrival, "arrival"
        return self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB), t

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

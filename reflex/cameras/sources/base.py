"""What every frame source provides, and the pacing helper the file-like sources share."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class SourceError(RuntimeError):
    """A source could not be opened or stopped delivering; the message names the source."""


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    fps: float  # what the source declares; 0 = unknown / as fast as possible
    description: str  # e.g. "pattern 640x480@30", "video clip.mp4", "v4l2 /dev/video0 (pyav)"


class FrameSource(Protocol):
    """``read`` blocks until the next frame and returns a new RGB HxWx3 uint8 array the caller
    owns, with its CLOCK_MONOTONIC capture time; ``None`` means the source has ended."""

    def open(self) -> SourceInfo: ...
    def read(self) -> tuple[np.ndarray, float] | None: ...
    def close(self) -> None: ...


class Pacer:
    """Releases one tick every ``1/fps`` s; after a stall it resynchronises instead of bursting."""

    def __init__(self, fps: float, stop: threading.Event | None = None) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.stop = stop or threading.Event()
        self._next = 0.0

    def wait(self) -> bool:
        """Sleep until the next tick; False if ``stop`` was set meanwhile."""
        if self.period <= 0:
            return not self.stop.is_set()
        now = time.monotonic()
        if self._next == 0.0 or now - self._next > self.period:
            self._next = now  # first tick, or we fell behind by more than a period
        elif self._next > now and self.stop.wait(self._next - now):
            return False
        self._next += self.period
        return not self.stop.is_set()

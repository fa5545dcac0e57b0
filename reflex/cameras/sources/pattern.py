"""A synthetic test pattern that carries its own frame number and checksum in the pixels.

Row 0 starts with a 16-byte stamp: ``b"RFXP"``, the frame number (u64 LE) and the CRC-32 of
rows 1..H-1. The rows below are a colour gradient shifted by the frame number plus a moving
vertical bar, so consecutive frames differ in every row. A frame torn between two writes (or
with its colour channels swapped) fails ``verify_pattern``; tests use this to prove that the
transport delivers whole frames only.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from functools import lru_cache

import numpy as np

from reflex.cameras.sources.base import Pacer, SourceInfo

STAMP = struct.Struct("<4sQI")
STAMP_MAGIC = b"RFXP"
MIN_WIDTH = 6  # the stamp needs 16 bytes of row 0
MIN_HEIGHT = 2
BAR_WIDTH = 4


class PatternError(ValueError):
    """The image is not an intact pattern frame (torn, converted wrongly, or not a pattern)."""


@lru_cache(maxsize=8)
def _gradient(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    channels = [(2 * x + y + 85 * c) & 0xFF for c in range(3)]
    base = np.stack(channels, axis=-1).astype(np.uint8)
    base.setflags(write=False)
    return base


def render_pattern(number: int, width: int, height: int) -> np.ndarray:
    """Frame ``number`` of the pattern as a new RGB array."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"pattern needs at least {MIN_WIDTH}x{MIN_HEIGHT} pixels, got {width}x{height}")
    image = _gradient(width, height) + np.uint8((number * 5) & 0xFF)  # uint8 wraps around
    bar = (number * 2) % width
    image[1:, bar : bar + BAR_WIDTH] = (255, 255, 255)
    image[0] = 0
    body_crc = zlib.crc32(image[1:].data)
    row0 = image[0].reshape(-1)
    row0[: STAMP.size] = np.frombuffer(STAMP.pack(STAMP_MAGIC, number, body_crc), np.uint8)
    return image


def verify_pattern(image: np.ndarray) -> int:
    """The frame number of an intact RGB pattern frame; raises PatternError otherwise."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PatternError(f"expected an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    if image.shape[1] < MIN_WIDTH or image.shape[0] < MIN_HEIGHT:
        raise PatternError(f"image {image.shape[1]}x{image.shape[0]} is too small for a pattern")
    magic, number, crc = STAMP.unpack(image[0].reshape(-1)[: STAMP.size].tobytes())
    if magic != STAMP_MAGIC:
        raise PatternError(f"no pattern stamp in row 0 (magic {magic!r}; colour order swapped?)")
    body = np.ascontiguousarray(image[1:])
    actual = zlib.crc32(body.data)
    if actual != crc:
        raise PatternError(f"frame {number}: body checksum {actual:08x} != stamp {crc:08x} (torn frame)")
    return int(number)


class PatternSource:
    """``--source pattern``: the test pattern at a fixed rate (``fps`` 0 = as fast as possible)."""

    def __init__(
        self, width: int = 640, height: int = 480, fps: float = 30.0, stop: threading.Event | None = None
    ) -> None:
        if width < MIN_WIDTH or height < MIN_HEIGHT:
            raise ValueError(f"pattern needs at least {MIN_WIDTH}x{MIN_HEIGHT} pixels, got {width}x{height}")
        self.width, self.height, self.fps = width, height, fps
        self._pacer = Pacer(fps, stop)
        self._number = 0

    def open(self) -> SourceInfo:
        rate = f"@{self.fps:g}" if self.fps > 0 else "@max"
        return SourceInfo(self.width, self.height, self.fps, f"pattern {self.width}x{self.height}{rate}")

    def read(self) -> tuple[np.ndarray, float] | None:
        if not self._pacer.wait():
            return None
        self._number += 1
        t_capture = time.monotonic()
        return render_pattern(self._number, self.width, self.height), t_capture

    def close(self) -> None:
        pass

"""Lossless camera frames for the LeRobot recorder (``record.image_encoding: lossless``).

Instead of a video, each frame is a PNG stored in the row itself (LeRobot's ``image`` dtype: a
``{bytes, path}`` struct in the data parquet), so replay gets back exactly the pixels the policy
saw. The frame is encoded on the format's writer thread and journaled with its row, so it is on
disk exactly when the row is: there is nothing to wait for (unlike a video encoder).
"""

from __future__ import annotations

import io

import numpy as np

from reflex.recording.lerobot.video import STATS_SIDE

PNG_LEVEL = 1  # fast zlib: size matters less than keeping up


class PngFrames:
    """Same surface as :class:`~reflex.recording.lerobot.video.CameraEncoder` (the recorder treats
    both alike), but :meth:`encode` hands the PNG back for the row instead of muxing it."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.hist = np.zeros((3, 256), dtype=np.int64)
        self.hist_frames = 0

    def encode(self, image: np.ndarray) -> bytes:
        from PIL import Image

        if self.size is None:
            self.size = (int(image.shape[0]), int(image.shape[1]))
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=PNG_LEVEL)
        step = max(1, max(image.shape[:2]) // STATS_SIDE)
        small = image[::step, ::step]
        for c in range(3):
            self.hist[c] += np.bincount(small[..., c].ravel(), minlength=256)
        self.hist_frames += 1
        self.frames += 1
        return buf.getvalue()

    def put(self, image: np.ndarray) -> None:
        """Frames go into the row (see :meth:`encode`), not here."""

    def flush(self) -> None:
        """Nothing buffered: a frame is written with its row."""

    @property
    def durable(self) -> int:
        return self.frames

    def close(self) -> int:
        return self.frames


def png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's header."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
    return int(height), int(width)

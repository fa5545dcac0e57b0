"""The loop behind ``reflex camera publish``: one source, one shared-memory channel."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reflex.cameras.sources.base import FrameSource, SourceError, SourceInfo
from reflex.shm.segments import StaleInfo
from reflex.shm.writer import ShmWriter


@dataclass
class PublishStats:
    path: str
    frames: int
    duration_s: float
    replaced: StaleInfo | None

    @property
    def fps(self) -> float:
        return self.frames / self.duration_s if self.duration_s > 0 else 0.0


def publish(
    name: str,
    source: FrameSource,
    *,
    pixel_format: str = "rgb24",
    slots: int = 4,
    max_frames: int = 0,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[ShmWriter, SourceInfo], None] | None = None,
) -> PublishStats:
    """Publish until the source ends, ``max_frames``/``duration_s`` is reached or ``stop`` is set.

    Sources deliver RGB; a ``bgr24`` channel gets its channels swapped once, while writing.
    The channel is removed on every way out of this function.
    """
    stop = stop or threading.Event()
    info = source.open()
    try:
        writer = ShmWriter.create(
            name, info.width, info.height, pixel_format=pixel_format, slots=slots,
            fps=info.fps, source=info.description,
        )  # fmt: skip
    except BaseException:
        source.close()
        raise
    t0 = time.monotonic()
    try:
        if on_ready is not None:
            on_ready(writer, info)
        while not stop.is_set():
            if max_frames and writer.frames_written >= max_frames:
                break
            if duration_s is not None and time.monotonic() - t0 >= duration_s:
                break
            try:
                item = source.read()
            except Exception as exc:  # a device unplugged, a corrupt file: name the source
                raise SourceError(f"{info.description} failed: {type(exc).__name__}: {exc}") from exc
            if item is None:
                break
            image, t_capture = item
            _write(writer, image, t_capture, pixel_format)
    finally:
        writer.close()
        source.close()
    return PublishStats(str(writer.path), writer.frames_written, time.monotonic() - t0, writer.replaced)


def _write(writer: ShmWriter, image: np.ndarray, t_capture: float, pixel_format: str) -> None:
    shape = (writer.header.height, writer.header.width, 3)
    if image.shape != shape:
        raise ValueError(f"source delivered a {image.shape} frame into a {shape} channel")
    if pixel_format == "rgb24":
        writer.write(image, t_capture)
        return
    with writer.frame(t_capture) as buf:
        for c in range(3):
            buf[..., c] = image[..., 2 - c]

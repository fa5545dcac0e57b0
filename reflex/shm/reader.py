"""The reader side of a frame channel: attach, read the newest complete frame, watch the owner.

Reading never blocks the publisher and never returns a torn frame: the slot's seqlock counter
is checked before and after the copy, and a frame that was overwritten during the copy is
retried on the then-newest frame (a ring of slots means the writer only reuses a slot after
``slot_count - 1`` newer frames, so a retry is rare even at full publish rate).
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reflex.shm import layout
from reflex.shm.layout import ChannelHeader, LayoutError
from reflex.shm.segments import ChannelNotFound, channel_path, owner_alive, same_file
from reflex.shm.views import map_views

READ_ATTEMPTS = 4


@dataclass
class FrameData:
    """A frame copied out of the channel (the caller owns ``image``)."""

    image: np.ndarray
    frame_number: int
    t_capture: float
    t_published: float


@dataclass
class FrameView:
    """A frame still inside shared memory (zero copy). Use it, then check ``valid()``.

    The publisher reuses the slot ``slot_count - 1`` frames later; anything computed from
    ``image`` is trustworthy only if ``valid()`` is still true after the computation.
    """

    image: np.ndarray  # read-only view into the channel
    frame_number: int
    t_capture: float
    t_published: float
    _seq_of_slot: Callable[[], int]
    _seq: int

    def valid(self) -> bool:
        layout.fence()
        return self._seq_of_slot() == self._seq


def _seq_reader(slot_header: memoryview[int]) -> Callable[[], int]:
    return lambda: int(slot_header[layout.SLOT_SEQ])


class ShmReader:
    """A read-only mapping of one channel; any number of readers may attach."""

    def __init__(self, path: Path, fd: int, mm: mmap.mmap, header: ChannelHeader) -> None:
        self.path = path
        self.header = header
        self._fd = fd
        self._mm = mm
        views = map_views(mm, header)
        self._hq, self._hd = views.hq, views.hd
        self._slot_q, self._slot_d, self._pixels = views.slot_q, views.slot_d, views.pixels
        st = os.fstat(fd)
        self.inode = (st.st_ino, st.st_dev)

    @classmethod
    def attach(cls, name: str, wait_s: float = 0.0, poll_s: float = 0.05) -> ShmReader:
        """Map channel ``name``; wait up to ``wait_s`` for it to appear."""
        path = channel_path(name)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                break
            except FileNotFoundError:
                if time.monotonic() >= deadline:
                    raise ChannelNotFound(
                        f"no camera channel '{name}' ({path}): start a publisher first, e.g. "
                        f"`reflex camera publish {name} --source pattern`"
                    ) from None
                time.sleep(poll_s)
        try:
            size = os.fstat(fd).st_size
            if size < layout.HEADER_SIZE:
                raise LayoutError(f"{path}: {size} bytes, too small for a channel")
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
            try:
                header = ChannelHeader.unpack(mm[: layout.HEADER_SIZE], str(path))
                if size < header.total_size:
                    raise LayoutError(f"{path}: {size} bytes, the header describes {header.total_size}")
            except BaseException:
                mm.close()
                raise
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, mm, header)

    # -- state published by the writer -------------------------------------------------------

    def latest_number(self) -> int:
        """Number of the newest complete frame (0 before the first); cheap, no copy."""
        return int(self._hq[layout.LATEST])

    def state(self) -> str:
        return layout.STATE_NAMES.get(int(self._hq[layout.STATE]), "unknown")

    def heartbeat_age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - float(self._hd[layout.T_HEARTBEAT])

    def fps_measured(self) -> float:
        return float(self._hd[layout.FPS_MEASURED])

    def publisher_alive(self) -> bool:
        """True while the publisher process holds the channel (exact, survives SIGKILL)."""
        return owner_alive(self._fd)

    def replaced(self) -> bool:
        """True when the path no longer names this mapping (publisher restarted or removed it)."""
        return not same_file(self._fd, self.path)

    # -- frames ------------------------------------------------------------------------------

    def read(self, out: np.ndarray | None = None) -> FrameData | None:
        """Copy the newest complete frame (channel colour order) into ``out`` or a new array.

        Returns None if there is no frame yet (or, very rarely, if the publisher lapped every
        attempt); on None the contents of ``out`` are undefined.
        """
        if out is None:
            out = np.empty(self._pixels[0].shape, np.uint8)
        target = out

        def copy(src: np.ndarray) -> np.ndarray:
            np.copyto(target, src)
            return target

        return self._read(copy)

    def read_rgb(self) -> FrameData | None:
        """The newest frame as a new RGB array; a BGR channel is converted during the copy."""
        shape = self._pixels[0].shape
        if self.header.pixel_format == "rgb24":
            return self._read(lambda src: src.copy())

        def swap(src: np.ndarray) -> np.ndarray:
            dst = np.empty(shape, np.uint8)
            for c in range(3):  # per-channel copies: ~4x faster than a reversed-axis copy
                dst[..., c] = src[..., 2 - c]
            return dst

        return self._read(swap)

    def view(self) -> FrameView | None:
        """The newest complete frame without copying; see FrameView for the rules."""
        for _ in range(READ_ATTEMPTS):
            n = int(self._hq[layout.LATEST])
            if n == 0:
                return None
            slot = (n - 1) % self.header.slot_count
            sq, sd = self._slot_q[slot], self._slot_d[slot]
            seq = int(sq[layout.SLOT_SEQ])
            if seq != 2 * n:
                continue
            layout.fence()
            t_cap, t_pub = float(sd[layout.SLOT_T_CAPTURE]), float(sd[layout.SLOT_T_PUBLISHED])
            frame = FrameView(self._pixels[slot], n, t_cap, t_pub, _seq_reader(sq), seq)
            if frame.valid():
                return frame
        return None

    def _read(self, copy: Callable[[np.ndarray], np.ndarray]) -> FrameData | None:
        for _ in range(READ_ATTEMPTS):
            n = int(self._hq[layout.LATEST])
            if n == 0:
                return None
            slot = (n - 1) % self.header.slot_count
            sq, sd = self._slot_q[slot], self._slot_d[slot]
            seq = int(sq[layout.SLOT_SEQ])
            if seq != 2 * n:
                continue  # already being overwritten by a newer frame: go for that one
            layout.fence()
            t_cap, t_pub = float(sd[layout.SLOT_T_CAPTURE]), float(sd[layout.SLOT_T_PUBLISHED])
            image = copy(self._pixels[slot])
            layout.fence()
            if int(sq[layout.SLOT_SEQ]) == seq:
                return FrameData(image, n, t_cap, t_pub)
        return None

    def wait_new(self, after: int, timeout_s: float, poll_s: float = 0.0005) -> int:
        """Poll until the newest frame number differs from ``after``; returns it (may be ``after``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            n = int(self._hq[layout.LATEST])
            if n != after or time.monotonic() >= deadline:
                return n
            if poll_s > 0:
                time.sleep(poll_s)

    def close(self) -> None:
        if self._fd < 0:
            return
        views: list[memoryview[Any]] = [*self._slot_q, *self._slot_d, self._hq, self._hd]
        for view in views:
            view.release()
        self._slot_q, self._slot_d, self._pixels = [], [], []
        try:  # noqa: SIM105 - the comment below is the point
            self._mm.close()
        except BufferError:  # a FrameView is still held somewhere; unmapped when it goes
            pass
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> ShmReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Camera frames from the session to its recording process, in one shared-memory ring.

The session (one writer) reserves room for a step's frames at ``head`` and copies them in; the
recording process (one reader) copies them out in the order they were written and then moves
``tail`` past them, in the segment's header. Space is ``capacity - (head - tail)`` bytes: a step
whose frames do not fit is refused (the caller drops and counts the frames), so the ring never
holds more than its capacity and nobody waits for anybody. A frame never wraps around the end:
the gap it skips counts as used until the reader moves past it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from reflex.ports import Frame

HEADER_BYTES = 64  # tail (uint64) and room to spare, keeping frames 64-byte aligned
# name -> (offset in the ring, shape, dtype, t_capture, seq)
FrameSlot = tuple[int, tuple[int, ...], str, float, int]


class FrameRing:
    def __init__(self, shm: SharedMemory, capacity: int, owner: bool) -> None:
        self.shm = shm
        self.capacity = capacity
        self.owner = owner
        self._tail: np.ndarray | None = np.ndarray((1,), np.uint64, buffer=shm.buf, offset=0)
        self.head = 0  # bytes ever claimed (writer side)
        self.max_used = 0

    @classmethod
    def create(cls, capacity: int) -> FrameRing:
        name = f"reflex-rec-{os.getpid()}-{secrets.token_hex(4)}"
        shm = SharedMemory(name=name, create=True, size=HEADER_BYTES + capacity)
        fd = getattr(shm, "_fd", -1)
        if hasattr(os, "posix_fallocate") and fd >= 0:
            # reserve the pages now: a full /dev/shm (64 MiB in a default container) is then an
            # error at set-up, not a SIGBUS when the control thread first writes a frame
            try:
                os.posix_fallocate(fd, 0, HEADER_BYTES + capacity)
            except OSError:
                shm.close()
                shm.unlink()
                raise
        ring = cls(shm, capacity, owner=True)
        assert ring._tail is not None
        ring._tail[0] = 0
        # touch every page now, at set-up: the ring cycles through all of them anyway, and a first
        # write to a page is a fault the control thread would otherwise take mid-tick
        pages: np.ndarray = np.ndarray((capacity,), np.uint8, buffer=shm.buf, offset=HEADER_BYTES)
        pages.fill(0)
        del pages
        return ring

    @classmethod
    def attach(cls, name: str, capacity: int) -> FrameRing:
        if sys.version_info >= (3, 13):
            kwargs: dict[str, Any] = {"track": False}
            shm = SharedMemory(name=name, **kwargs)
        else:  # attaching registers the segment with this process's tracker, which would unlink it at exit
            shm = SharedMemory(name=name)
            resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        return cls(shm, capacity, owner=False)

    @property
    def name(self) -> str:
        return self.shm.name

    def used(self) -> int:
        assert self._tail is not None
        return self.head - int(self._tail[0])

    # -- writer ---------------------------------------------------------------------------------
    def claim(self, frames: dict[str, Frame]) -> tuple[dict[str, FrameSlot], int] | None:
        """Reserve room for every frame (arithmetic only, no copy): their slots and the ``head``
        the reader releases up to, or None (nothing reserved) when they do not all fit."""
        assert self._tail is not None
        tail = int(self._tail[0])
        head = self.head
        slots: dict[str, FrameSlot] = {}
        for name, frame in frames.items():
            image = frame.image
            n = int(image.nbytes)
            pos = head % self.capacity
            gap = self.capacity - pos if pos + n > self.capacity else 0
            if head + gap + n - tail > self.capacity:
                return None
            offset = (head + gap) % self.capacity
            slots[name] = (offset, tuple(image.shape), image.dtype.str, frame.t_capture, frame.seq)
            head += gap + n
        self.head = head
        self.max_used = max(self.max_used, head - tail)
        return slots, head

    def write(self, slots: dict[str, FrameSlot], frames: dict[str, Frame]) -> None:
        """Copy frames into the slots :meth:`claim` gave them (numpy's copy of a large array
        releases the interpreter lock)."""
        for name, (offset, shape, dtype, _, _) in slots.items():
            view: np.ndarray = np.ndarray(shape, np.dtype(dtype), buffer=self.shm.buf, offset=HEADER_BYTES + offset)
            np.copyto(view, frames[name].image)
            del view

    # -- reader ---------------------------------------------------------------------------------
    def take(self, slots: dict[str, FrameSlot], release_to: int) -> dict[str, Frame]:
        """Copy the frames out and give their space back."""
        frames: dict[str, Frame] = {}
        for name, (offset, shape, dtype, t_capture, seq) in slots.items():
            view: np.ndarray = np.ndarray(shape, np.dtype(dtype), buffer=self.shm.buf, offset=HEADER_BYTES + offset)
            frames[name] = Frame(image=view.copy(), t_capture=t_capture, seq=seq)
            del view
        assert self._tail is not None
        self._tail[0] = release_to
        return frames

    def close(self) -> None:
        self._tail = None  # the segment cannot close while an array still points into it
        self.shm.close()
        if self.owner:
            with contextlib.suppress(FileNotFoundError):
                self.shm.unlink()

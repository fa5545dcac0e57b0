"""The publisher side of a frame channel: create, write frames, close (and never leak the file)."""

from __future__ import annotations

import fcntl
import mmap
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from reflex.shm import layout
from reflex.shm.layout import ChannelHeader
from reflex.shm.segments import ChannelBusy, StaleInfo, channel_path, same_file, stale_info, try_lock
from reflex.shm.views import map_views

TAKEOVER_WAIT_S = 0.5  # how long a new publisher tries to lock a possibly stale channel
_FPS_ALPHA = 0.1


class ShmWriter:
    """Owns one channel. Frames are written into a ring of slots, each guarded by a seqlock."""

    def __init__(
        self,
        path: Path,
        fd: int,
        mm: mmap.mmap,
        header: ChannelHeader,
        replaced: StaleInfo | None,
        watchdog: subprocess.Popen[bytes] | None,
    ) -> None:
        self.path = path
        self.header = header
        self.replaced = replaced  # the dead publisher's channel this one took over, if any
        self._fd = fd
        self._mm = mm
        self._watchdog = watchdog
        self._n = 0
        self._t_last = 0.0
        self._fps = 0.0
        views = map_views(mm, header)
        self._hq, self._hd = views.hq, views.hd
        self._slot_q, self._slot_d, self._pixels = views.slot_q, views.slot_d, views.pixels
        self._hd[layout.T_HEARTBEAT] = time.monotonic()

    @classmethod
    def create(
        cls,
        name: str,
        width: int,
        height: int,
        *,
        pixel_format: str = "rgb24",
        slots: int = 4,
        fps: float = 0.0,
        source: str = "",
        watchdog: bool = True,
    ) -> ShmWriter:
        """Create channel ``name`` (taking over a stale one) and make it visible to readers.

        Raises ChannelBusy if a live publisher already owns the name. With ``watchdog`` a helper
        process removes the channel if this process dies without closing it (e.g. SIGKILL).
        """
        if pixel_format not in layout.PIXEL_FORMATS:
            raise ValueError(f"pixel_format {pixel_format!r}: expected one of {sorted(layout.PIXEL_FORMATS)}")
        if width < 1 or height < 1 or slots < 2:
            raise ValueError(f"channel '{name}': need width, height >= 1 and slots >= 2")
        path = channel_path(name)
        header = ChannelHeader(
            width=width, height=height, channels=3, pixel_format=pixel_format, slot_count=slots,
            pid=os.getpid(), t_created=time.monotonic(), fps_nominal=float(fps), name=name,
            source=source,
        )  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        mm: mmap.mmap | None = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else knows this file yet
            os.ftruncate(fd, header.total_size)
            mm = mmap.mmap(fd, header.total_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            mm[: layout.HEADER_SIZE] = header.pack()
            replaced = _install(fd, tmp, path, name)
        except BaseException:
            if mm is not None:
                mm.close()
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        guard = _start_watchdog(path, fd) if watchdog else None
        return cls(path, fd, mm, header, replaced, guard)

    @property
    def frames_written(self) -> int:
        return self._n

    def write(self, image: np.ndarray, t_capture: float | None = None) -> int:
        """Copy one frame (HxWx3 uint8 in the channel's colour order) in; returns its number."""
        shape = self._pixels[0].shape
        if image.shape != shape or image.dtype != np.uint8:
            raise ValueError(
                f"channel '{self.header.name}': frame is {image.shape} {image.dtype}, "
                f"the channel carries {shape} uint8"
            )
        with self.frame(t_capture) as buf:
            np.copyto(buf, image)
        return self._n

    @contextmanager
    def frame(self, t_capture: float | None = None) -> Iterator[np.ndarray]:
        """Fill the next slot in place (no intermediate copy); published when the block exits.

        If the block raises, the slot stays marked "being written" and nothing is published.
        """
        n = self._n + 1
        slot = (n - 1) % self.header.slot_count
        sq, sd = self._slot_q[slot], self._slot_d[slot]
        t_cap = time.monotonic() if t_capture is None else t_capture
        sq[layout.SLOT_SEQ] = 2 * n - 1  # odd: readers skip this slot until the write is done
        layout.fence()
        yield self._pixels[slot]
        now = time.monotonic()
        sd[layout.SLOT_T_CAPTURE] = t_cap
        sd[layout.SLOT_T_PUBLISHED] = now
        sq[layout.SLOT_FRAME_NUMBER] = n
        layout.fence()
        sq[layout.SLOT_SEQ] = 2 * n
        self._hq[layout.LATEST] = n
        self._n = n
        self._hd[layout.T_HEARTBEAT] = now
        if self._t_last:
            rate = 1.0 / max(now - self._t_last, 1e-6)
            self._fps = rate if not self._fps else self._fps + _FPS_ALPHA * (rate - self._fps)
            self._hd[layout.FPS_MEASURED] = self._fps
        else:
            self._hq[layout.STATE] = layout.STATE_LIVE
        self._t_last = now

    def heartbeat(self) -> None:
        """Say "still alive" while the source has no new frame."""
        self._hd[layout.T_HEARTBEAT] = time.monotonic()

    def close(self) -> None:
        """Mark the channel closed, remove it, unmap, release the lock, stop the watchdog."""
        if self._fd < 0:
            return
        self._hq[layout.STATE] = layout.STATE_CLOSED
        if same_file(self._fd, self.path):
            self.path.unlink(missing_ok=True)
        views: list[memoryview[Any]] = [*self._slot_q, *self._slot_d, self._hq, self._hd]
        for view in views:
            view.release()
        self._slot_q, self._slot_d, self._pixels = [], [], []
        try:  # noqa: SIM105 - the comment below is the point
            self._mm.close()
        except BufferError:  # a caller still holds a frame() buffer; the mapping dies with it
            pass
        os.close(self._fd)  # releases the ownership lock
        self._fd = -1
        if self._watchdog is not None:
            _stop_watchdog(self._watchdog)
            self._watchdog = None

    def __enter__(self) -> ShmWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _install(fd: int, tmp: Path, path: Path, name: str) -> StaleInfo | None:
    """Make the fully initialised ``tmp`` visible as ``path``; take over a stale channel."""
    for _ in range(100):
        try:
            os.link(tmp, path)  # atomic "create if absent"
            tmp.unlink()
            return None
        except FileExistsError:
            pass
        try:
            old = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if not try_lock(old, exclusive=True, wait_s=TAKEOVER_WAIT_S):
                pid = stale_info(old, path).pid
                raise ChannelBusy(
                    f"channel '{name}' ({path}) is already published by pid {pid}: "
                    "stop that publisher or choose another name"
                )
            if not same_file(old, path):
                continue  # replaced or removed meanwhile: start over
            info = stale_info(old, path)
            os.rename(tmp, path)  # atomic replace while holding the old file's lock
            return info
        finally:
            os.close(old)
    raise ChannelBusy(f"channel '{name}' ({path}): could not install the channel (path keeps changing)")


def _start_watchdog(path: Path, fd: int) -> subprocess.Popen[bytes] | None:
    """A helper that removes the channel once this process is gone and the lock is free."""
    import reflex

    st = os.fstat(fd)
    package_root = str(Path(reflex.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "reflex.shm.watchdog", str(path), str(st.st_ino), str(st.st_dev)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal must not kill the cleaner first
        )
    except OSError:
        return None  # no watchdog: a crash leaves a stale channel that readers detect and remove


def _stop_watchdog(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: the channel is already gone, the watchdog just exits
        proc.wait(timeout=5.0)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()

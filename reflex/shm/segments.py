"""Where channels live, who owns them, and how a dead publisher's channel is removed.

A channel named ``top`` is the file ``<dir>/reflex_cam_top`` (``<dir>`` is ``/dev/shm``, or
``$REFLEX_SHM_DIR``); ``$REFLEX_SHM_NAMESPACE=ns`` turns it into ``reflex_cam_ns.top`` so test
runs never collide with a robot's live cameras.

Ownership is an exclusive ``flock`` the publisher holds on the file for its whole life. The
kernel drops it when the process dies, however it dies (SIGKILL included), so "can someone else
take the lock?" is an exact liveness test that needs no pid (pids are reused and invisible
across containers). Everyone who may remove or replace a channel (a new publisher, the
watchdog, a reader cleaning up, ``reflex camera list --clean``) first takes the exclusive lock
on the old file and re-checks that the path still names that file, so a freshly published
channel is never removed by mistake. This module is stdlib-only: the watchdog imports it.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "reflex_cam_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
# A reader's liveness probe holds a shared lock for microseconds: retry briefly before concluding
# that a live publisher holds the lock.
PROBE_RETRY_S = 0.05


class ChannelError(RuntimeError):
    """Base class of channel problems; messages name the channel and its path."""


class ChannelNotFound(ChannelError):
    pass


class ChannelBusy(ChannelError):
    """Another live publisher owns the channel name."""


def shm_dir() -> Path:
    override = os.environ.get("REFLEX_SHM_DIR")
    if override:
        return Path(override)
    default = Path("/dev/shm")
    if default.is_dir():
        return default
    import tempfile  # hosts without /dev/shm (macOS): page-cache backed files still share memory

    return Path(tempfile.gettempdir())


def file_prefix() -> str:
    namespace = os.environ.get("REFLEX_SHM_NAMESPACE", "")
    if namespace and not NAME_PATTERN.match(namespace):
        raise ValueError(f"REFLEX_SHM_NAMESPACE={namespace!r}: use letters, digits, '_' or '-'")
    return f"{PREFIX}{namespace}." if namespace else PREFIX


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"channel name {name!r}: expected 1-48 characters from letters, digits, '_' and '-'"
        )
    return name


def channel_path(name: str) -> Path:
    return shm_dir() / f"{file_prefix()}{check_name(name)}"


def channel_names() -> list[str]:
    """Names of every channel file in the current namespace (live or stale)."""
    prefix = file_prefix()
    try:
        entries = os.listdir(shm_dir())
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        rest = entry[len(prefix) :]
        if NAME_PATTERN.match(rest):  # skips other namespaces ("ns.name") and temp files
            names.append(rest)
    return sorted(names)


def try_lock(fd: int, exclusive: bool, wait_s: float = 0.0) -> bool:
    """Take a flock without blocking for longer than ``wait_s``."""
    op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, op)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)


def owner_alive(fd: int) -> bool:
    """True while a publisher holds its exclusive lock on the file behind ``fd``."""
    if try_lock(fd, exclusive=False):
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    return True


def same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (own.st_ino, own.st_dev)


@dataclass(frozen=True)
class StaleInfo:
    """What is known about a channel whose publisher is gone."""

    path: str
    pid: int
    last_frame_age_s: float | None

    def describe(self) -> str:
        age = "no frame" if self.last_frame_age_s is None else f"last frame {self.last_frame_age_s:.1f} s ago"
        return f"{self.path}: publisher pid {self.pid} is gone ({age})"


def stale_info(fd: int, path: Path) -> StaleInfo:
    """Pid and last-frame age from a header, without a full parse (stdlib only)."""
    try:
        raw = os.pread(fd, 88, 0)
        pid = struct.unpack_from("<I", raw, 56)[0]
        t_heartbeat, latest = struct.unpack_from("<dQ", raw, 72)
        age = time.monotonic() - t_heartbeat if latest else None
    except (OSError, struct.error):
        pid, age = 0, None
    return StaleInfo(str(path), pid, age)


def remove_if_stale(
    path: Path, only_inode: tuple[int, int] | None = None, wait_s: float = PROBE_RETRY_S
) -> StaleInfo | None:
    """Remove the channel at ``path`` if no publisher owns it; returns what was removed.

    ``only_inode`` (st_ino, st_dev) limits removal to that very file (the watchdog uses it so it
    never removes a successor). A live channel is never touched.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        own = os.fstat(fd)
        if only_inode is not None and (own.st_ino, own.st_dev) != only_inode:
            return None  # a successor channel: not ours to judge
        if not try_lock(fd, exclusive=True, wait_s=wait_s):
            return None
        if not same_file(fd, path):
            return None
        info = stale_info(fd, path)
        os.unlink(path)
        return info
    finally:
        os.close(fd)  # also releases the lock


def remove_all_stale() -> list[StaleInfo]:
    """``reflex camera list --clean``: remove every channel of this namespace whose publisher died."""
    removed = []
    for name in channel_names():
        info = remove_if_stale(channel_path(name))
        if info is not None:
            removed.append(info)
    return removed

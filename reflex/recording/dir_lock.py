"""One live session per recording directory, and a finished recording is never overwritten.

Before anything is built, a session claims its recording directory:

* a directory that already holds a recording (``recording.json``) is refused — a second run with
  the same ``--record`` used to overwrite the first silently;
* ``<dir>/.reflex.lock`` is created exclusively and held with ``flock`` for the whole session: a
  second live session (same host) finds it held and is refused, naming the owner;
* a lock left by a killed session is not held by anyone (the kernel drops ``flock`` with the
  process): it is recognised as stale and taken over — unless the killed session had already
  begun writing, then the directory is refused like any other recording (``reflex recordings
  repair`` finishes it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from reflex.recording.manifest import MANIFEST, read_json

LOCK_NAME = ".reflex.lock"


class RecordingDirRefused(Exception):
    """The directory cannot take this session's recording; the message says why and what to do."""


class RecordingLock:
    """A claimed recording directory; :meth:`release` at the very end of the session."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @property
    def path(self) -> Path:
        return self.directory / LOCK_NAME

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # drops the flock
        self._fd = None


def claim_recording_dir(directory: Path, session_id: str, resume: bool = False) -> RecordingLock:
    """Create (if needed) and lock ``directory`` for ``session_id``. Raises RecordingDirRefused.

    ``resume`` (``reflex connect --resume``) is the one way into a directory that holds a
    recording: it must hold one, and the same lock keeps every other session out."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordingDirRefused(f"cannot create recording directory {directory}: {exc}") from None
    if not directory.is_dir():
        raise RecordingDirRefused(f"{directory} is not a directory")
    lock = directory / LOCK_NAME
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        fresh = True
    except FileExistsError:
        fd = os.open(lock, os.O_RDWR)
        fresh = False
    except OSError as exc:
        raise RecordingDirRefused(f"cannot write to recording directory {directory}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = _describe(_read_owner(lock))
        raise RecordingDirRefused(
            f"{directory} is being written by a live session ({holder}); two sessions never share a "
            "recording directory: give this one another --record"
        ) from None
    previous = None if fresh else _read_owner(lock)
    if not fresh and previous is None:
        os.close(fd)  # the owner created it a moment ago and has not written it yet
        raise RecordingDirRefused(f"{directory} is being claimed by another session right now")
    manifest = read_json(directory / MANIFEST)
    if resume and not (directory / MANIFEST).exists():
        os.close(fd)
        if fresh:
            lock.unlink(missing_ok=True)
        raise RecordingDirRefused(f"{directory} holds no recording to resume (no {MANIFEST})")
    if (directory / MANIFEST).exists() and not resume:
        os.close(fd)
        if fresh:
            lock.unlink(missing_ok=True)
        status = (manifest or {}).get("status", "unknown")
        stale = f"; stale lock of a killed session ({_describe(previous)})" if previous else ""
        repair = "; `reflex recordings repair` finishes it" if status == "recording" else ""
        raise RecordingDirRefused(
            f"{directory} already holds a recording (session {(manifest or {}).get('session_id', '?')}, "
            f"status {status}{stale}){repair}. A recording is never overwritten: give a new --record / "
            "record.dir, or leave it unset for a new directory per session"
        )
    owner: dict[str, Any] = {
        "pid": os.getpid(), "host": socket.gethostname(), "session_id": session_id, "t_start_wall": time.time()
    }
    if previous is not None:
        owner["took_over_stale_lock_of"] = previous
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
    os.fsync(fd)
    return RecordingLock(directory, fd)


def _read_owner(lock: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(lock.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "owner unknown"
    return f"session {owner.get('session_id', '?')}, pid {owner.get('pid', '?')} on {owner.get('host', '?')}"

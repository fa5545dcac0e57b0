"""``record.isolation: process``: the recorders run in a child process, not in the session's.

Writer threads in the session's process hold its interpreter lock while they serialize, and the
control loop waits for it (measured in docs/performance.md: with six cameras and the loop in
SCHED_FIFO, lateness p99 0.4 ms without recording, 17 ms with it). Here the session keeps only
this proxy, with the :class:`~reflex.recording.hub.Hub` interface, and the recorders run in an
ordinary :class:`RecordingHub` in ``python -m reflex.recording.process_child`` (spawned, never
forked: the session has threads).

* **The control thread's submit stays cheap**: it reserves room for a step's camera frames in a
  shared-memory :class:`FrameRing` (arithmetic, no copy) and queues the step; a sender thread
  copies the frames in (numpy's copy releases the interpreter lock; cameras never write into a
  frame they handed out) and pickles the step without them to the child over a socket. Frames
  waiting for their copy are never more than the room reserved for them.
* **Memory is inside ``record.queue_budget_mb``**: the ring takes a quarter of it (at most
  ``RING_MAX_BYTES``), the child's queues the rest. When the child does not take frames out fast
  enough, a step's frames that do not fit in the ring are dropped and counted (``droppedFrames``,
  every format); when the send queue (``record.queue_size`` items) is full, the whole item is
  dropped and every format has fallen behind: a recording failure handled by ``record.on_error``,
  as in the in-process hub. Nothing waits and nothing grows.
* **Status comes back**: the child sends its recorders' statistics every 0.1 s and at close;
  :meth:`failures`, :meth:`stats` and :meth:`report` read the latest, with the drops made here
  added.
* **Either side can die**: the child's end of the socket closing before the session asked it to
  close makes every format failed (``on_error`` applies at the next step); the session's process
  dying makes the child close every format, so the files stay readable.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import reflex
from reflex.ports import ActionChunk, Recorder, SessionEvent, SessionMeta, StepRecord
from reflex.recording.frame_ring import FrameRing
from reflex.recording.hub import (
    DEFAULT_BUDGET_BYTES,
    RecorderStats,
    RecordingHub,
    format_failures,
    lagging_formats,
    recording_report,
)
from reflex.recording.manifest import MANIFEST, read_json, write_json_atomic

# 34 frames of 640x480 (the child takes them out at once); fits a container's default 64 MiB /dev/shm
RING_MAX_BYTES = 32 * 2**20
START_GRACE_S = 60.0  # the child imports the recorders' libraries before it opens them
CLOSE_GRACE_S = 2.0  # past the close timeout, for the child's last status to arrive
_CLOSE = object()


def ring_bytes(budget_bytes: int) -> int:
    """The ring's share of the recording budget: a quarter, at most ``RING_MAX_BYTES``."""
    return min(budget_bytes // 4, RING_MAX_BYTES)


class ProcessRecordingHub:
    def __init__(
        self,
        formats: list[str],
        directory: Path,
        meta: SessionMeta,
        queue_size: int,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        *,
        images: bool = True,
        image_encoding: str = "lossy",
        resume: bool = False,
        sinks: list[Recorder] | None = None,
    ) -> None:
        self.formats = list(formats)
        self.directory = directory
        self.budget_bytes = budget_bytes
        self._meta = meta
        self._queue_size = queue_size
        self._init = {
            "formats": self.formats, "directory": str(directory), "images": images, "imageEncoding": image_encoding,
            "resume": resume, "meta": meta, "queueSize": queue_size,
        }
        self._sinks = RecordingHub([], meta, queue_size, None, sinks=sinks) if sinks else None
        self._ring: FrameRing | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._started = threading.Event()
        self._start_failures: list[str] = []
        self._closed = threading.Event()
        self._closing = False
        self._close_deadline = 0.0
        # the child's latest status
        self._child_stats = [RecorderStats(name, budget_bytes=budget_bytes) for name in self.formats]
        self._child_max_used = 0
        self._unfinished: list[str] = []
        # what was dropped here, before the child: counted in every format
        self._dropped = 0
        self._dropped_frames = 0
        self._fell_behind: str | None = None
        self._died: str | None = None
        self._failures: list[str] = []
        self.steps_submitted = 0

    # -- start --------------------------------------------------------------------------------
    def start(self, open_timeout_s: float = 30.0) -> list[str]:
        """Spawn the child and wait until every recorder has opened; returns open failures."""
        ring_size = ring_bytes(self.budget_bytes)
        try:
            self._ring = FrameRing.create(ring_size)
        except OSError as exc:
            return [f"recording process: shared memory of {ring_size / 2**20:.0f} MiB for the frames: "
                    f"{type(exc).__name__}: {exc} (is /dev/shm big enough? A quarter of record.queue_budget_mb, "
                    "at most 32 MiB, is needed)"]
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        root = str(Path(reflex.__file__).resolve().parent.parent)  # the child imports this same reflex
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "reflex.recording.process_child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env, stdout=subprocess.DEVNULL,
                start_new_session=True,  # terminal signals are the session's; it closes the child
            )
        except OSError as exc:
            ours.close()
            return [f"recording process: could not start: {type(exc).__name__}: {exc}"]
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        init = {**self._init, "ring": self._ring.name, "ringBytes": ring_size,
                "budgetBytes": self.budget_bytes - ring_size, "openTimeoutS": open_timeout_s}
        try:
            self._send(init)
        except OSError as exc:
            self._child_gone(f"could not start: {type(exc).__name__}: {exc}")
            return [f"recording process: {self._died}"]
        threading.Thread(target=self._receive, name="reflex-rec-status", daemon=True).start()
        if not self._started.wait(open_timeout_s + START_GRACE_S):
            return [f"recording process: recorders not open after {open_timeout_s + START_GRACE_S:.0f} s"]
        if self._died is not None and not self._start_failures:
            return [f"recording process: {self._died}"]
        threading.Thread(target=self._forward, name="reflex-rec-send", daemon=True).start()
        if self._sinks is not None:
            self._sinks.start()
        return list(self._start_failures)

    # -- the two threads talking to the child ---------------------------------------------------
    def _send(self, msg: Any) -> None:
        assert self._conn is not None
        with self._send_lock:
            self._conn.send(msg)

    def _forward(self) -> None:
        """Pickles queued items to the child (blocking here, never on the control thread)."""
        while True:
            entry = self._queue.get()
            if entry is _CLOSE:  # after every item queued before it, so none arrives after the close
                with self._submit_lock:
                    counts = (self._dropped, self._dropped_frames, self._fell_behind)
                with contextlib.suppress(OSError):
                    self._send(("close", *counts, max(0.0, self._close_deadline - time.monotonic())))
                return
            item, slots, release_to, frames = entry
            try:
                if slots:
                    assert self._ring is not None
                    self._ring.write(slots, frames)
                self._send(("item", item, slots, release_to))
            except OSError:  # the child is gone: _receive reports it
                return
            except Exception as exc:  # an item that cannot be pickled: dropped and counted
                with self._submit_lock:
                    self._drop(item, f"could not send it to the recording process: {type(exc).__name__}: {exc}")

    def _receive(self) -> None:
        assert self._conn is not None
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "started":
                self._start_failures = list(msg[1])
                self._started.set()
            elif kind == "status" and not self._closed.is_set():
                self._child_stats, self._child_max_used = msg[1], msg[2]
                self._refresh_failures()
            elif kind == "closed":
                self._child_stats, self._child_max_used, self._unfinished = msg[1], msg[2], list(msg[3])
                self._closed.set()
                self._refresh_failures()
        if not self._closed.is_set():
            code = None
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._proc.wait(1.0)
            self._child_gone(f"exited (code {code}) before the session closed the recording")

    def _child_gone(self, why: str) -> None:
        self._died = why
        self._started.set()
        self._refresh_failures()

    # -- the control thread ---------------------------------------------------------------------
    def submit(self, item: StepRecord | ActionChunk | SessionEvent) -> None:
        if isinstance(item, StepRecord):
            self.steps_submitted += 1
        if self._sinks is not None:
            self._sinks.submit(item)
        if self._died is not None or self._closing or self._ring is None:
            return
        with self._submit_lock:
            if self._queue.full():  # counted as the in-process hub counts a full queue: the item
                self._drop(item, f"queue full ({self._queue_size} items)")
                return
            slots: dict[str, Any] = {}
            release_to = 0
            frames: dict[str, Any] = {}
            if isinstance(item, StepRecord) and item.frames:
                placed = self._ring.claim(item.frames)  # room only: the sender thread copies
                if placed is None:
                    self._dropped_frames += len(item.frames)
                else:
                    slots, release_to = placed
                    frames = item.frames  # held until copied: never more than the room claimed
                item = replace(item, frames={})
            self._queue.put_nowait((item, slots, release_to, frames))

    def _drop(self, item: Any, why: str) -> None:
        """A whole item not recorded by any format (call with ``_submit_lock`` held)."""
        self._dropped += 1
        if self._fell_behind is None:
            where = f"step {item.step}" if isinstance(item, StepRecord) else type(item).__name__
            self._fell_behind = f"fell behind at {where}: {why}"
            self._refresh_failures()

    def failures(self) -> list[str]:
        """Formats that failed, or fell behind so far that whole items were dropped."""
        return self._failures

    def _refresh_failures(self) -> None:
        self._failures = format_failures(self.stats())

    # -- close ----------------------------------------------------------------------------------
    def close(self, timeout_s: float, cut_short: threading.Event | None = None) -> list[str]:
        """Finish writing what is queued and close every format, within ``timeout_s`` (or until
        ``cut_short`` is set, then at most one more second); returns the formats not finished."""
        deadline = time.monotonic() + timeout_s
        self._close_deadline = deadline
        self._closing = True
        if self._conn is not None and self._died is None and self._started.is_set():
            self._stop_forwarding(deadline, cut_short)
            cut_sent = False
            while not self._closed.wait(0.05) and self._died is None:
                now = time.monotonic()
                if cut_short is not None and cut_short.is_set() and not cut_sent:
                    cut_sent = True
                    deadline = min(deadline, now + 1.0)
                    with contextlib.suppress(OSError):
                        self._send(("cut",))
                if now > deadline + CLOSE_GRACE_S:
                    break
        if not self._closed.is_set():
            self._unfinished = list(self.formats)
            self._mark_manifest()
        self._shut_down()
        if self._sinks is not None:
            self._sinks.close(max(0.0, deadline - time.monotonic()) + 1.0)
        self._refresh_failures()
        return list(self._unfinished)

    def _stop_forwarding(self, deadline: float, cut_short: threading.Event | None) -> None:
        while True:
            try:
                self._queue.put(_CLOSE, timeout=0.05)
                return
            except queue.Full:
                if self._died is not None or time.monotonic() > deadline:
                    return
                if cut_short is not None and cut_short.is_set():
                    deadline = min(deadline, time.monotonic() + 1.0)

    def _shut_down(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the child sees its socket end and exits
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(CLOSE_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._ring is not None:
            self._ring.close()

    def _mark_manifest(self) -> None:
        """The child could not finish the recording: its manifest keeps ``status: recording`` (so
        ``reflex recordings info`` says interrupted and ``repair`` finishes what the formats allow,
        as after a ``kill -9``) and says why."""
        path = self.directory / MANIFEST
        data = read_json(path)
        if data is None:
            return
        data["recording_process"] = self._died or "did not finish within the close timeout"
        with contextlib.suppress(OSError):
            write_json_atomic(path, data)

    # -- what the session reads -------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return bool(self.formats)

    def stats(self) -> list[RecorderStats]:
        """The child's latest statistics with what was dropped here (already in them after close)."""
        if self._closed.is_set():
            return list(self._child_stats)
        out = []
        for s in self._child_stats:
            s = replace(s, dropped=s.dropped + self._dropped, dropped_frames=s.dropped_frames + self._dropped_frames,
                        fell_behind=s.fell_behind or self._fell_behind)
            if self._died is not None and s.failed is None:
                s.failed = f"recording process {self._died}"
            out.append(s)
        return out

    def sink_stats(self) -> list[RecorderStats]:
        return self._sinks.sink_stats() if self._sinks is not None else []

    def lagging(self) -> list[str]:
        return lagging_formats(self.stats(), self._unfinished, self._queue_size)

    def report(self) -> dict[str, Any]:
        out = recording_report(self.stats(), self._unfinished, self._queue_size, self.budget_bytes,
                               self._child_max_used + (self._ring.max_used if self._ring is not None else 0))
        ring = self._ring
        out["isolation"] = {
            "mode": "process",
            "pid": self._proc.pid if self._proc is not None else None,
            "transferMiB": round(ring.capacity / 2**20, 3) if ring is not None else 0.0,
            "maxTransferMiB": round(ring.max_used / 2**20, 3) if ring is not None else 0.0,
            "transferDropped": self._dropped,
            "transferDroppedFrames": self._dropped_frames,
            "processExit": self._died,
        }
        return out

"""Feeds every recorder from the control loop without ever blocking it.

Each format gets its own queue and writer thread: a slow or failing format cannot stall the loop
or the other formats. The queues are bounded in **bytes** together (``record.queue_budget_mb``,
a :class:`ByteBudget`: a frame queued for several formats is one array and counts once; one
format may hold at most half the budget when there are several, so a slow one cannot starve the
rest) and each in items (``record.queue_size``). A format that falls behind degrades in two
steps, each counted: first a step's camera frames are dropped (the step line is kept); when even
that does not fit, the whole item is dropped and the format has *fallen behind*, which
:meth:`failures` reports so the loop applies ``record.on_error``. A failing recorder is marked
failed and stops receiving items. Memory never grows past the budget, except by the encodings
made while frames wait: a frame is admitted on its pixels and the encodings it carries, and an
encoding a format makes while the frame is still queued for another is counted when made (a few
percent of the frame for JPEG), so the next admissions see it.
Given a directory, the hub also keeps ``<directory>/recording.json`` (see :mod:`manifest`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from reflex.ports import ActionChunk, Frame, Recorder, SessionEvent, SessionMeta, StepRecord
from reflex.recording.jpeg import encoded_nbytes
from reflex.recording.manifest import MANIFEST, manifest_start, read_json, write_json_atomic

FLUSH_EVERY_S = 1.0
DEFAULT_BUDGET_BYTES = 256 * 2**20  # record.queue_budget_mb's default
ITEM_OVERHEAD_BYTES = 4096  # a step's state, action, events and Python objects, without its frames
_STOP = object()
SINK_BUDGET_BYTES = 32 * 2**20  # the live viewer's backlog: it drops rather than hold more
SINK_CLOSE_S = 5.0


class ByteBudget:
    """Bytes held by a group of queues; each frame counts once however many queues hold it: its
    pixels plus the encodings cached on it (:mod:`reflex.recording.jpeg`), which are added when a
    format makes them while the frame is still queued for another."""

    def __init__(self, limit: int, per_writer: int) -> None:
        self.limit = limit
        self.per_writer = per_writer
        self.used = 0
        self.max_used = 0
        self.lock = threading.Lock()
        self._frames: dict[int, list[int]] = {}  # id(frame) -> [bytes counted, queues holding it, encoded bytes]

    def new_bytes(self, item: object) -> int:
        """What queueing ``item`` once more would add (call with the lock held)."""
        extra = ITEM_OVERHEAD_BYTES
        if isinstance(item, StepRecord):
            extra += sum(frame_bytes(f) for f in item.frames.values() if id(f) not in self._frames)
        elif isinstance(item, ActionChunk):
            extra += int(item.actions.nbytes)
        return extra

    def take(self, item: object) -> None:
        self.used += self.new_bytes(item)
        if isinstance(item, StepRecord):
            for f in item.frames.values():
                held = self._frames.get(id(f))
                if held is None:
                    encoded = encoded_nbytes(f)
                    self._frames[id(f)] = [f.image.nbytes + encoded, 1, encoded]
                else:
                    held[1] += 1
        self._note_max()

    def note_encoded(self, item: object) -> None:
        """Count the encodings a format just made of ``item``'s frames, for the frames still
        queued for another format (call with the lock held)."""
        if not isinstance(item, StepRecord):
            return
        for f in item.frames.values():
            held = self._frames.get(id(f))
            if held is not None:
                grown = encoded_nbytes(f) - held[2]
                if grown > 0:
                    held[0] += grown
                    held[2] += grown
                    self.used += grown
        self._note_max()

    def give_back(self, item: object) -> None:
        self.used -= ITEM_OVERHEAD_BYTES
        if isinstance(item, ActionChunk):
            self.used -= int(item.actions.nbytes)
        elif isinstance(item, StepRecord):
            for f in item.frames.values():
                held = self._frames[id(f)]
                held[1] -= 1
                if held[1] == 0:
                    del self._frames[id(f)]
                    self.used -= held[0]

    def _note_max(self) -> None:
        if self.used > self.max_used:
            self.max_used = self.used


def frame_bytes(frame: Frame) -> int:
    """A frame's pixels plus the encodings cached on it so far."""
    return int(frame.image.nbytes) + encoded_nbytes(frame)


def item_bytes(item: object) -> int:
    """What an item holds in memory while queued (frames dominate; the rest is a flat estimate)."""
    if isinstance(item, StepRecord):
        return ITEM_OVERHEAD_BYTES + sum(frame_bytes(f) for f in item.frames.values())
    if isinstance(item, ActionChunk):
        return ITEM_OVERHEAD_BYTES + int(item.actions.nbytes)
    return ITEM_OVERHEAD_BYTES


@dataclass
class RecorderStats:
    name: str
    written_steps: int = 0
    dropped: int = 0  # whole items (steps, chunks, events) not written
    dropped_frames: int = 0  # camera frames left out of steps that were written
    failed: str | None = None
    fell_behind: str | None = None  # why the first whole item was dropped
    max_queue: int = 0
    queued_bytes: int = 0  # the backlog now
    max_queued_bytes: int = 0
    budget_bytes: int = 0  # the most this format may hold
    busy_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _Writer:
    def __init__(self, recorder: Recorder, meta: SessionMeta, queue_size: int, budget: ByteBudget) -> None:
        self.recorder = recorder
        self.meta = meta
        self.stats = RecorderStats(recorder.name, budget_bytes=budget.per_writer)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(target=self._run, name=f"reflex-rec-{recorder.name}", daemon=True)
        self.opened = threading.Event()
        self.budget = budget

    def start(self) -> None:
        self.thread.start()

    def offer(self, item: Any) -> None:
        stats = self.stats
        if stats.failed is not None:
            return
        budget = self.budget
        size = item_bytes(item)
        with budget.lock:
            fits = self._fits(size, budget.new_bytes(item))
            if not fits and isinstance(item, StepRecord) and item.frames:
                stats.dropped_frames += len(item.frames)
                item = replace(item, frames={})
                size = item_bytes(item)
                fits = self._fits(size, budget.new_bytes(item))
            if not fits:
                self._drop(item, f"recorder queues over their {budget.limit / 2**20:.0f} MiB budget "
                                 f"({stats.queued_bytes / 2**20:.0f} MiB held by this format)")
                return
            try:
                self.queue.put_nowait((item, size))
            except queue.Full:
                self._drop(item, f"queue full ({self.queue.maxsize} items)")
                return
            budget.take(item)
            stats.queued_bytes += size
            if stats.queued_bytes > stats.max_queued_bytes:
                stats.max_queued_bytes = stats.queued_bytes
        depth = self.queue.qsize()
        if depth > stats.max_queue:
            stats.max_queue = depth

    def _fits(self, size: int, new: int) -> bool:
        return (self.stats.queued_bytes + size <= self.budget.per_writer
                and self.budget.used + new <= self.budget.limit)

    def _drop(self, item: Any, why: str) -> None:
        self.stats.dropped += 1
        if self.stats.fell_behind is None:
            where = f"step {item.step}" if isinstance(item, StepRecord) else type(item).__name__
            self.stats.fell_behind = f"fell behind at {where}: {why}"

    def _run(self) -> None:
        rec = self.recorder
        try:
            rec.open(self.meta)
        except Exception as exc:
            self.stats.failed = f"open: {type(exc).__name__}: {exc}"
        finally:
            self.opened.set()
        last_flush = time.monotonic()
        while self.stats.failed is None:
            try:
                item = self.queue.get(timeout=FLUSH_EVERY_S / 2)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if item is not None:
                item, size = item
                with self.budget.lock:
                    self.stats.queued_bytes -= size
                    self.budget.give_back(item)
            t0 = time.perf_counter()
            try:
                if isinstance(item, StepRecord):
                    rec.write_step(item)
                    self.stats.written_steps += 1
                    if item.frames:
                        with self.budget.lock:
                            self.budget.note_encoded(item)
                elif isinstance(item, ActionChunk):
                    rec.write_chunk(item)
                elif isinstance(item, SessionEvent):
                    rec.write_event(item)
                if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                    rec.flush()
                    last_flush = time.monotonic()
            except Exception as exc:
                self.stats.failed = f"write: {type(exc).__name__}: {exc}"
            self.stats.busy_s += time.perf_counter() - t0
        try:
            rec.close()
        except Exception as exc:
            if self.stats.failed is None:
                self.stats.failed = f"close: {type(exc).__name__}: {exc}"
        summary = getattr(rec, "summary", None)
        if callable(summary):
            try:
                self.stats.extra.update(summary())
            except Exception as exc:
                self.stats.extra["summary_error"] = f"{type(exc).__name__}: {exc}"


class Hub(Protocol):
    """What the session and the loop use of a recording hub: :class:`RecordingHub` (writer threads
    in this process) or :class:`reflex.recording.process_hub.ProcessRecordingHub` (in a child)."""

    @property
    def recording(self) -> bool: ...

    def start(self, open_timeout_s: float = 30.0) -> list[str]: ...

    def submit(self, item: StepRecord | ActionChunk | SessionEvent) -> None: ...

    def failures(self) -> list[str]: ...

    def close(self, timeout_s: float, cut_short: threading.Event | None = None) -> list[str]: ...

    def stats(self) -> list[RecorderStats]: ...

    def sink_stats(self) -> list[RecorderStats]: ...

    def lagging(self) -> list[str]: ...

    def report(self) -> dict[str, Any]: ...


def format_failures(stats: list[RecorderStats]) -> list[str]:
    return [f"{s.name}: {s.failed or s.fell_behind}" for s in stats if s.failed or s.fell_behind]


def lagging_formats(stats: list[RecorderStats], unfinished: list[str], queue_size: int) -> list[str]:
    return [
        s.name for s in stats
        if s.dropped or s.dropped_frames or s.name in unfinished
        or s.max_queue * 2 >= queue_size or s.max_queued_bytes * 2 >= s.budget_bytes
    ]


def recording_report(stats: list[RecorderStats], unfinished: list[str], queue_size: int, budget_bytes: int,
                     max_used: int) -> dict[str, Any]:
    return {
        "degraded": bool(unfinished or any(s.failed or s.dropped or s.dropped_frames for s in stats)),
        "lagging": lagging_formats(stats, unfinished, queue_size),
        "maxQueue": {s.name: s.max_queue for s in stats},
        "queueSize": queue_size,
        "droppedFrames": {s.name: s.dropped_frames for s in stats},
        "backlogMiB": {s.name: round(s.queued_bytes / 2**20, 3) for s in stats},
        "maxBacklogMiB": {s.name: round(s.max_queued_bytes / 2**20, 3) for s in stats},
        "queueBudgetMiB": round(budget_bytes / 2**20, 3),
        "maxQueuedMiB": round(max_used / 2**20, 3),  # all formats together, frames once
        "formatStatus": {s.name: dict(s.extra) for s in stats if s.extra},
    }


class RecordingHub:
    def __init__(
        self,
        recorders: list[Recorder],
        meta: SessionMeta,
        queue_size: int,
        directory: Path | None = None,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        sinks: list[Recorder] | None = None,
    ) -> None:
        """``budget_bytes`` bounds every queue together (frames shared by formats count once);
        with several formats one may hold at most half of it.

        ``sinks`` (the live viewer) are fed the same items on their own writer threads, best
        effort: their drops and failures never count as the recording's (no error, no safe stop,
        not in the manifest); each has a queue of ``queue_size`` items and ``SINK_BUDGET_BYTES``."""
        self.budget = ByteBudget(budget_bytes, budget_bytes if len(recorders) <= 1 else budget_bytes // 2)
        self._writers = [_Writer(r, meta, queue_size, self.budget) for r in recorders]
        self._sinks = [
            _Writer(r, meta, queue_size, ByteBudget(SINK_BUDGET_BYTES, SINK_BUDGET_BYTES)) for r in sinks or []
        ]
        self.budget_bytes = budget_bytes
        self._meta = meta
        self._queue_size = queue_size
        self._directory = directory
        self._unfinished: list[str] = []
        self.steps_submitted = 0
        self.t_first_step: float | None = None
        self.t_last_step: float | None = None

    def start(self, open_timeout_s: float = 30.0) -> list[str]:
        """Start writers and wait for every recorder to open; returns open failures."""
        if self._directory is not None:
            formats = [w.stats.name for w in self._writers]
            try:
                write_json_atomic(self._directory / MANIFEST, manifest_start(self._meta, formats))
            except OSError as exc:
                return [f"{self._directory / MANIFEST}: {type(exc).__name__}: {exc}"]
        for w in [*self._writers, *self._sinks]:
            w.start()
        for w in self._writers:
            w.opened.wait(open_timeout_s)
        return [f"{w.stats.name}: {w.stats.failed}" for w in self._writers if w.stats.failed]

    def submit(self, item: StepRecord | ActionChunk | SessionEvent) -> None:
        if isinstance(item, StepRecord):
            self.steps_submitted += 1
            if self.t_first_step is None:
                self.t_first_step = item.t_tick
            self.t_last_step = item.t_tick
        for w in self._writers:
            w.offer(item)
        for w in self._sinks:
            w.offer(item)

    def failures(self) -> list[str]:
        """Formats that failed, or fell behind so far that whole items were dropped."""
        return format_failures(self.stats())

    def close(self, timeout_s: float, cut_short: threading.Event | None = None) -> list[str]:
        """Finish writing what is queued and close every format, within ``timeout_s`` (or until
        ``cut_short`` is set, then at most one more second); returns the formats not finished."""
        deadline = time.monotonic() + timeout_s
        for w in self._writers:
            while True:
                try:
                    w.queue.put(_STOP, timeout=0.05)  # not counted in bytes: it holds none
                    break
                except queue.Full:
                    if w.stats.failed or time.monotonic() > deadline:
                        break
                    if cut_short is not None and cut_short.is_set():
                        deadline = min(deadline, time.monotonic() + 1.0)
        unfinished = []
        for w in self._writers:
            while w.thread.is_alive() and time.monotonic() < deadline:
                if cut_short is not None and cut_short.is_set():
                    deadline = min(deadline, time.monotonic() + 1.0)
                w.thread.join(0.05)
            if w.thread.is_alive():
                unfinished.append(w.stats.name)
        self._unfinished = unfinished
        self._close_sinks(time.monotonic() + SINK_CLOSE_S)
        if self._directory is not None:
            try:
                write_json_atomic(self._directory / MANIFEST, self._final_manifest())
            except OSError as exc:  # e.g. the disk is full: the result still reports everything
                for w in self._writers:
                    w.stats.extra.setdefault("manifest_error", f"{type(exc).__name__}: {exc}")
        return unfinished

    def _close_sinks(self, deadline: float) -> None:
        for w in self._sinks:
            with contextlib.suppress(queue.Full):
                w.queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
        for w in self._sinks:
            w.thread.join(max(0.0, deadline - time.monotonic()))

    def stats(self) -> list[RecorderStats]:
        return [w.stats for w in self._writers]

    def sink_stats(self) -> list[RecorderStats]:
        return [w.stats for w in self._sinks]

    @property
    def recording(self) -> bool:
        """False when the hub only feeds sinks (recording off, the live viewer on)."""
        return bool(self._writers)

    def lagging(self) -> list[str]:
        """Formats that could not keep up: dropped items or frames, or a queue that ran over half
        full (in items or in bytes)."""
        return lagging_formats(self.stats(), self._unfinished, self._queue_size)

    def report(self) -> dict[str, Any]:
        """Extra keys for the session result's ``recording`` block."""
        return recording_report(self.stats(), self._unfinished, self._queue_size, self.budget_bytes,
                                self.budget.max_used)

    def note_upstream_drops(self, dropped: int, dropped_frames: int, fell_behind: str | None) -> None:
        """Count in every format what was dropped before it reached this hub (the transfer to a
        recording process, :mod:`reflex.recording.process_hub`), so the manifest has it."""
        for w in self._writers:
            w.stats.dropped += dropped
            w.stats.dropped_frames += dropped_frames
            if fell_behind and w.stats.fell_behind is None:
                w.stats.fell_behind = fell_behind

    def _final_manifest(self) -> dict[str, Any]:
        assert self._directory is not None
        data = read_json(self._directory / MANIFEST) or manifest_start(
            self._meta, [w.stats.name for w in self._writers]
        )
        report = self.report()
        duration = (
            0.0 if self.t_first_step is None or self.t_last_step is None
            else self.t_last_step - self.t_first_step + 1.0 / self._meta.control_rate_hz
        )
        data.update({
            "status": "degraded" if report["degraded"] else "complete",
            "t_end_wall": time.time(),
            "steps": self.steps_submitted,
            "duration_s": round(duration, 6),
            "lagging": report["lagging"],
            "formats": {
                w.stats.name: {
                    "written_steps": w.stats.written_steps,
                    "dropped": w.stats.dropped,
                    "dropped_frames": w.stats.dropped_frames,
                    "fell_behind": w.stats.fell_behind,
                    "failed": w.stats.failed,
                    "unfinished": w.stats.name in self._unfinished,
                    "max_queue": w.stats.max_queue,
                    "max_backlog_bytes": w.stats.max_queued_bytes,
                    "busy_s": round(w.stats.busy_s, 4),
                    **w.stats.extra,
                }
                for w in self._writers
            },
        })
        return data

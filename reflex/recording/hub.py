"""Feeds every recorder from the control loop without ever blocking it.

Each format gets its own bounded queue and writer thread: a slow or failing format cannot stall
the loop or the other formats. A full queue drops the item and counts it; a failing recorder is
marked failed (the loop polls :meth:`failures` and reacts per config) and stops receiving items.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from reflex.ports import ActionChunk, Recorder, SessionEvent, SessionMeta, StepRecord

FLUSH_EVERY_S = 1.0
_STOP = object()


@dataclass
class RecorderStats:
    name: str
    written_steps: int = 0
    dropped: int = 0
    failed: str | None = None
    max_queue: int = 0
    busy_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _Writer:
    def __init__(self, recorder: Recorder, meta: SessionMeta, queue_size: int) -> None:
        self.recorder = recorder
        self.meta = meta
        self.stats = RecorderStats(recorder.name)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(target=self._run, name=f"reflex-rec-{recorder.name}", daemon=True)
        self.opened = threading.Event()

    def start(self) -> None:
        self.thread.start()

    def offer(self, item: Any) -> None:
        if self.stats.failed is not None:
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.stats.dropped += 1
            return
        depth = self.queue.qsize()
        if depth > self.stats.max_queue:
            self.stats.max_queue = depth

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
            t0 = time.perf_counter()
            try:
                if isinstance(item, StepRecord):
                    rec.write_step(item)
                    self.stats.written_steps += 1
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


class RecordingHub:
    def __init__(self, recorders: list[Recorder], meta: SessionMeta, queue_size: int) -> None:
        self._writers = [_Writer(r, meta, queue_size) for r in recorders]

    def start(self, open_timeout_s: float = 30.0) -> list[str]:
        """Start writers and wait for every recorder to open; returns open failures."""
        for w in self._writers:
            w.start()
        for w in self._writers:
            w.opened.wait(open_timeout_s)
        return [f"{w.stats.name}: {w.stats.failed}" for w in self._writers if w.stats.failed]

    def submit(self, item: StepRecord | ActionChunk | SessionEvent) -> None:
        for w in self._writers:
            w.offer(item)

    def failures(self) -> list[str]:
        return [f"{w.stats.name}: {w.stats.failed}" for w in self._writers if w.stats.failed]

    def close(self, timeout_s: float, cut_short: threading.Event | None = None) -> list[str]:
        """Finish writing what is queued and close every format, within ``timeout_s`` (or until
        ``cut_short`` is set, then at most one more second); returns the formats not finished."""
        deadline = time.monotonic() + timeout_s
        for w in self._writers:
            while True:
                try:
                    w.queue.put(_STOP, timeout=0.05)
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
        return unfinished

    def stats(self) -> list[RecorderStats]:
        return [w.stats for w in self._writers]

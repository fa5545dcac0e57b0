"""Keeps Python's cyclic garbage collector out of the control tick.

A full (generation 2) collection walks every tracked object: with a policy runtime, numpy,
pydantic and the recorders imported that takes 10-100+ ms, and left automatic it runs whenever an
allocation happens to cross a threshold — in the middle of a tick. So for the length of the loop:

* the set-up heap is collected once and frozen (``gc.freeze()``) before the first observation,
  so later collections never walk it again;
* automatic collection is off, and the loop collects in the idle time after a tick instead,
  youngest generation first, and only when the time left before the next tick allows it;
* should garbage pile up because there is never idle time, a young collection runs anyway
  (bounded: it only walks objects allocated since the last one), so memory cannot grow.

Counts and pause times go into the session result (``loop.gc``). ``REFLEX_LOOP_GC=auto`` in the
environment leaves the collector automatic (for comparison, e.g. ``bench/scale_bench.py``).
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

# Minimum idle time (s) before the next tick for a collection of each generation; a young
# collection of a few thousand objects takes well under 0.1 ms, an old one a few ms at most
# once the set-up heap is frozen.
IDLE_NEEDED_S = (0.0002, 0.0005, 0.003)
FORCE_FACTOR = 20  # a young collection runs regardless of idle time past 20x its threshold


class LoopCollector:
    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.forced = 0
        self.max_pause_ms = 0.0
        self.total_pause_ms = 0.0
        self.allocated = 0  # net GC-tracked allocations (objects) during the loop, all threads
        self.ticks = 0
        self._was_enabled = False
        self._active = False
        self._thresholds = gc.get_threshold()
        self._last_count0 = 0

    def prepare(self) -> None:
        """Collect and freeze the set-up heap. Slow (a full collection), so it runs before the
        first observation is taken, never between the first chunk and the first tick."""
        if os.environ.get("REFLEX_LOOP_GC", "scheduled") == "auto":
            return
        gc.collect()
        gc.freeze()

    @property
    def active(self) -> bool:
        return self._active

    def start(self) -> None:
        """Take over collection for the length of the loop."""
        if self._active or os.environ.get("REFLEX_LOOP_GC", "scheduled") == "auto":
            return
        self._was_enabled = gc.isenabled()
        gc.disable()
        if not gc.get_freeze_count():
            self.prepare()
        self._thresholds = gc.get_threshold()
        self._last_count0 = gc.get_count()[0]
        self._active = True

    def idle(self, idle_s: float) -> None:
        """Called once per tick with the time left before the next one."""
        if not self._active:
            return
        self.ticks += 1
        count0, count1, count2 = gc.get_count()
        self.allocated += count0 - self._last_count0
        self._last_count0 = count0
        t0, t1, t2 = self._thresholds
        generation = -1
        if count0 >= t0 and t0 > 0:
            generation = 0
            if count1 >= t1:
                generation = 1
                if count2 >= t2:
                    generation = 2
        if generation < 0:
            return
        while generation >= 0 and idle_s < IDLE_NEEDED_S[generation]:
            generation -= 1
        if generation < 0:
            if count0 < FORCE_FACTOR * t0:
                return
            generation = 1 if count1 >= FORCE_FACTOR * t1 else 0
            self.forced += 1
        start = time.perf_counter()
        gc.collect(generation)
        pause = (time.perf_counter() - start) * 1e3
        self.collections[generation] += 1
        self.total_pause_ms += pause
        self.max_pause_ms = max(self.max_pause_ms, pause)
        self._last_count0 = gc.get_count()[0]

    def stop(self) -> None:
        """Give collection back (the frozen heap becomes ordinary old objects again)."""
        if not self._active:
            return
        self._active = False
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def summary(self) -> dict[str, Any]:
        return {
            "collections": list(self.collections),
            "forced": self.forced,
            "maxPauseMs": round(self.max_pause_ms, 4),
            "totalPauseMs": round(self.total_pause_ms, 3),
            "objectsPerTick": round(self.allocated / self.ticks, 2) if self.ticks else 0.0,
        }

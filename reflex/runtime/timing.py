"""Cheap latency bookkeeping for the control loop (add on the hot path, summarise at the end).

Memory stays flat however long a session runs: each quantity keeps every sample up to
:data:`CAPACITY` (so ordinary sessions report exact percentiles), then a uniform random reservoir
of that size (Vitter's algorithm R), while count, mean and max stay exact. The reservoir is
allocated (and its pages touched) when the quantity is created, so it does not show as RSS
growing for the first ``CAPACITY`` steps of a session (18 minutes at 30 Hz).
"""

from __future__ import annotations

import random
from array import array

import numpy as np

CAPACITY = 1 << 15  # 32,768 samples: 256 KiB per quantity; a 1 kHz loop fills it in ~33 s


class Samples:
    """Millisecond samples of one quantity, in bounded memory."""

    __slots__ = ("_kept", "_n", "_recent", "_rng", "capacity", "count", "max", "total")

    def __init__(self, capacity: int = CAPACITY, recent: int = 0) -> None:
        """``recent``: also keep the last this many samples, for a live view (:meth:`recent`)."""
        self.capacity = capacity
        self._kept = array("d", bytes(8 * capacity))  # filled up to _n, then sampled into
        self._n = 0
        self._recent = array("d", bytes(8 * recent))
        self._rng = random.Random(0x5EED)  # seeded: the same samples give the same summary
        self.count = 0
        self.total = 0.0
        self.max = float("-inf")

    def add(self, ms: float) -> None:
        if self._recent:
            self._recent[self.count % len(self._recent)] = ms
        self.count += 1
        self.total += ms
        if ms > self.max:
            self.max = ms
        if self._n < self.capacity:
            self._kept[self._n] = ms
            self._n += 1
            return
        slot = self._rng.randrange(self.count)  # keep each sample with probability capacity/count
        if slot < self.capacity:
            self._kept[slot] = ms

    def recent(self) -> list[float]:
        """The last samples (up to ``recent`` of them, in no particular order); read from any thread."""
        return list(self._recent[: min(self.count, len(self._recent))])

    @property
    def kept(self) -> int:
        """How many samples the percentiles are computed from (``min(count, capacity)``)."""
        return self._n

    def summary(self) -> dict[str, float | int]:
        if not self.count:
            return {"count": 0}
        arr = np.frombuffer(self._kept, dtype=np.float64)[: self._n]
        p50, p90, p99 = np.percentile(arr, [50, 90, 99])
        return {
            "count": self.count,
            "p50": round(float(p50), 4),
            "p90": round(float(p90), 4),
            "p99": round(float(p99), 4),
            "max": round(float(self.max), 4),
            "mean": round(self.total / self.count, 4),
        }


class StageTimes:
    """One :class:`Samples` per named stage."""

    def __init__(self, *stages: str) -> None:
        self.stages = {name: Samples() for name in stages}

    def add(self, stage: str, ms: float) -> None:
        self.stages[stage].add(ms)

    def summary(self) -> dict[str, dict[str, float | int]]:
        return {name: s.summary() for name, s in self.stages.items()}

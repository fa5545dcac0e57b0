"""Cheap latency bookkeeping for the control loop (append on the hot path, summarise at the end)."""

from __future__ import annotations

import numpy as np


class Samples:
    """Millisecond samples of one quantity."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[float] = []

    def add(self, ms: float) -> None:
        self.values.append(ms)

    def summary(self) -> dict[str, float | int]:
        if not self.values:
            return {"count": 0}
        arr = np.asarray(self.values)
        p50, p90, p99 = np.percentile(arr, [50, 90, 99])
        return {
            "count": int(arr.size),
            "p50": round(float(p50), 4),
            "p90": round(float(p90), 4),
            "p99": round(float(p99), 4),
            "max": round(float(arr.max()), 4),
            "mean": round(float(arr.mean()), 4),
        }


class StageTimes:
    """One :class:`Samples` per named stage."""

    def __init__(self, *stages: str) -> None:
        self.stages = {name: Samples() for name in stages}

    def add(self, stage: str, ms: float) -> None:
        self.stages[stage].add(ms)

    def summary(self) -> dict[str, dict[str, float | int]]:
        return {name: s.summary() for name, s in self.stages.items()}

"""Seam metrics: how much a chunk switch disturbs the commanded trajectory.

For every switch (a new chunk taking charge):

* ``gap`` — per joint, the distance between the old and the new trajectory at the switch time:
  what the policy disagrees with itself by, before any blending;
* ``jump`` — per joint, the largest step discontinuity the switch put into the command, measured
  against the old trajectory's own motion, ``|(u_t - u_{t-1}) - (r_t - r_{t-1})|`` over the blend
  window (``u``: the command, ``r``: what would have been commanded without the new chunk). A
  hard switch has ``jump == gap``; a blend spreads it over the window.

Both are measured on the blended command before the guard (the guard's delta clamp would hide
them). Jerk is measured on the guarded command: the third difference over the control period.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from reflex.runtime.timing import Samples

SEAMS_KEPT = 4096  # p50 over the latest seams; maxima are exact over the whole session


@dataclass
class Seam:
    chunk_id: int
    t: float  # tick time of the switch
    gap: np.ndarray  # (dim,)
    jump: np.ndarray  # (dim,)
    window_steps: int


class SeamMeter:
    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.count = 0
        self._recent: deque[Seam] = deque(maxlen=SEAMS_KEPT)
        self._gap_max: np.ndarray | None = None
        self._jump_max: np.ndarray | None = None
        self._fresh: list[Seam] = []
        self._history: deque[np.ndarray] = deque(maxlen=3)  # last guarded commands, oldest first
        self.jerk = Samples()  # max over joints of |jerk| per step, units/s^3

    def add(self, seam: Seam) -> None:
        self.count += 1
        self._recent.append(seam)
        self._fresh.append(seam)
        self._gap_max = seam.gap.copy() if self._gap_max is None else np.maximum(self._gap_max, seam.gap)
        self._jump_max = seam.jump.copy() if self._jump_max is None else np.maximum(self._jump_max, seam.jump)

    @property
    def last_jump(self) -> float | None:
        """The largest joint jump of the latest seam (the live status line reads it)."""
        recent = self._recent
        return float(np.max(recent[-1].jump)) if recent else None

    def drain(self) -> list[Seam]:
        """Seams completed since the last call (the loop records one event per seam)."""
        fresh, self._fresh = self._fresh, []
        return fresh

    def note_command(self, command: np.ndarray | None) -> None:
        """One guarded command per step (None for a held step, which breaks the difference)."""
        if command is None:
            self._history.clear()
            return
        h = self._history
        if len(h) == 3:
            third = command - 3.0 * h[2] + 3.0 * h[1] - h[0]
            self.jerk.add(float(np.max(np.abs(third))) / self.period_s**3)
        h.append(command)

    def summary(self, names: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"switches": self.count}
        jerk = self.jerk.summary()
        out["jerkP99"] = jerk.get("p99")
        out["jerkMax"] = jerk.get("max")
        if not self._recent:
            out["gap"] = out["jump"] = None
            return out
        assert self._gap_max is not None and self._jump_max is not None
        gaps = np.stack([s.gap for s in self._recent])
        jumps = np.stack([s.jump for s in self._recent])
        out["gap"] = _stats(gaps, self._gap_max, names)
        out["jump"] = _stats(jumps, self._jump_max, names)
        return out


def _stats(values: np.ndarray, maxima: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    p50 = np.median(values, axis=0)
    overall = np.max(values, axis=1)
    per_joint = {
        name: {"p50": _r(p50[i]), "max": _r(maxima[i])} for i, name in enumerate(names[: values.shape[1]])
    }
    return {"p50": _r(np.median(overall)), "max": _r(np.max(maxima)), "perJoint": per_joint}


def _r(x: Any) -> float:
    return round(float(x), 6)

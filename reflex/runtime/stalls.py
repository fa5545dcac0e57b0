"""Gaps in the commands a robot gets while its motors are live, measured where every kind of
hardware shares them: between the control ticks (each tick applies an action or holds), so a
runner freeze, a slow ``apply`` (a subprocess robot's included) or a GIL-hogging policy call all
show up, named, in the result (``loop.stalls``). A gap beyond ``safety.max_command_gap_ms`` is
an incident: the session ends ``ok: false``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StallMeter:
    period_s: float  # the control period: a gap longer than two of them counts as a stall
    bound_s: float  # a gap longer than this is an incident
    count: int = 0
    max_gap_s: float = 0.0
    _last: float | None = None

    def note(self, t: float) -> float | None:
        """A command (or hold) went out at ``t``; returns the gap before it if beyond the bound."""
        last, self._last = self._last, t
        if last is None:
            return None
        gap = t - last
        self.max_gap_s = max(self.max_gap_s, gap)
        if gap > 2 * self.period_s:
            self.count += 1
        return gap if gap > self.bound_s else None

    def summary(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "maxGapMs": round(self.max_gap_s * 1e3, 3),
            "boundMs": round(self.bound_s * 1e3, 3),
        }

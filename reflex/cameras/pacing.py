"""A nominal frame clock for cameras that render their own frames (sim and test cameras)."""

from __future__ import annotations


class FramePacer:
    """Says when a new frame is due, keeping the nominal rate whatever the polling rate is."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next_due = 0.0

    @property
    def next_due(self) -> float:
        return self._next_due

    def due(self, now: float) -> bool:
        return now >= self._next_due

    def rendered(self, now: float) -> None:
        # next frame one period after the previous one, not after the poll (no drift to poll ticks)
        due = self._next_due + self.period
        self._next_due = due if due > now else now + self.period

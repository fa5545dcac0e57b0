"""Monotonic session times to wall-clock nanoseconds, for viewers that show dates (MCAP, Rerun).

Every ``t_*`` the runner records is ``time.monotonic()``; the session meta pins one monotonic
instant to the wall clock, so the conversion is the same for every format of a recording.
"""

from __future__ import annotations

from reflex.ports import SessionMeta


class WallClock:
    def __init__(self, meta: SessionMeta) -> None:
        self._offset_ns = round(meta.t_start_wall * 1e9) - round(meta.t_start_mono * 1e9)

    def ns(self, t_mono: float) -> int:
        return round(t_mono * 1e9) + self._offset_ns

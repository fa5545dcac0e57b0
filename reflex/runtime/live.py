"""A snapshot of a running session, read from another thread (the live status line, nothing else).

The control loop is never asked to do anything for it: the snapshot reads counters the loop keeps
anyway (plain ints, a list it appends to, the current chunk) without locks. A value read in the
middle of a tick is at most one step old, which is all a status line needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from reflex.recording.hub import Hub
    from reflex.runtime.episodes import EpisodeRunner
    from reflex.runtime.loop import ControlLoop


@dataclass(frozen=True)
class LiveSnapshot:
    t: float  # seconds since the loop started
    steps: int
    rate_hz: float  # achieved over the last interval
    lateness_p99_ms: float | None
    chunk_age_ms: float | None
    chunks: int
    clamp_delta: int
    clamp_limit: int
    stale_steps: int
    starved_steps: int
    record_backlog_kib: float | None  # None: not recording
    record_dropped: int
    seam_jump: float | None  # largest joint jump at the latest chunk switch (joint units)
    episode: str | None = None  # episodes sessions: "ep 2/3", and what it waits for (a label, a reset)


class LiveProbe:
    """Reads snapshots of one loop (and its recording hub); keeps the last one for the rate."""

    def __init__(
        self, loop: ControlLoop, hub: Hub | None, t_start: float, episodes: EpisodeRunner | None = None
    ) -> None:
        self.loop = loop
        self.hub = hub
        self.t_start = t_start
        self.episodes = episodes
        self._last: tuple[float, int] | None = None

    def snapshot(self) -> LiveSnapshot:
        loop = self.loop
        now = time.monotonic()
        steps = loop.steps
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (steps - self._last[1]) / (now - self._last[0])
        self._last = (now, steps)
        recent = loop.lateness.recent()
        p99 = float(np.percentile(recent, 99)) if recent else None
        chunk = loop.schedule.current
        backlog: float | None = None
        dropped = 0
        if self.hub is not None:
            stats = self.hub.stats()
            backlog = sum(s.queued_bytes for s in stats) / 1024
            dropped = sum(s.dropped + getattr(s, "dropped_frames", 0) for s in stats)
        meter = getattr(loop.schedule, "seams", None)
        seam = meter.last_jump if meter is not None else None
        return LiveSnapshot(
            t=now - self.t_start,
            steps=steps,
            rate_hz=rate,
            lateness_p99_ms=p99,
            chunk_age_ms=None if chunk is None else (now - chunk.t_origin) * 1e3,
            chunks=loop.schedule.chunks_adopted,
            clamp_delta=loop.guard.clamp_counts["clamp_delta"],
            clamp_limit=loop.guard.clamp_counts["clamp_limit"],
            stale_steps=loop.stale_steps,
            starved_steps=loop.starved_steps,
            record_backlog_kib=backlog,
            record_dropped=dropped,
            seam_jump=float(seam) if isinstance(seam, (int, float)) else None,
            episode=None if self.episodes is None else self.episodes.status(),
        )

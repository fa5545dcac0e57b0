"""What the control loop hands back: one report object, turned into the result in one place
(:meth:`reflex.runtime.result.SessionResult.add_loop_report`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Incident:
    """Why the loop had to stop the robot."""

    stage: str  # observe | infer | guard | apply | record | stale | starved | runner | signal | realtime
    message: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}"


@dataclass
class LoopReport:
    """Counters and summaries of one run of the control loop (also valid for a run cut short)."""

    steps: int = 0
    applied_steps: int = 0
    held_steps: int = 0
    starved_steps: int = 0
    stale_steps: int = 0
    skew_events: int = 0
    overruns: int = 0
    slow_ticks: int = 0  # ticks whose work took more than two periods
    gc: dict[str, Any] = field(default_factory=dict)  # collections between ticks (LoopCollector)
    late_wakeups: dict[str, Any] = field(default_factory=dict)  # ticks over a period late (WakeMeter)
    first_action_t: float | None = None  # monotonic time of the first guarded action
    incident: Incident | None = None
    exhausted: str | None = None  # a finite source (a replayed recording) ran out
    lateness_ms: dict[str, Any] = field(default_factory=dict)
    stages_ms: dict[str, Any] = field(default_factory=dict)
    chunks: dict[str, Any] = field(default_factory=dict)
    guard: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, Any] = field(default_factory=dict)
    # Chunk seams (reflex/runtime/seams.py): per switch the gap between the old and new
    # trajectories and the jump it put into the command (p50/max, per joint), jerk p99, settings.
    seams: dict[str, Any] = field(default_factory=dict)
    # gaps between commands while the motors were live (reflex/runtime/stalls.py)
    stalls: dict[str, Any] = field(default_factory=dict)

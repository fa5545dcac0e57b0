"""The result of a session, as printed by ``reflex connect --json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reflex.errors import (
    EXIT_ABORTED,
    EXIT_OK,
    EXIT_SAFE_STOP_FAILED,
    EXIT_SESSION_FAILED,
    EXIT_SETUP,
)

if TYPE_CHECKING:
    from reflex.runtime.report import LoopReport


@dataclass
class SessionResult:
    config: str
    mode: str
    session_id: str
    steps: int = 0
    applied_steps: int = 0
    safe_stops: int = 0
    safe_stop_failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop_reason: str = "not_started"
    setup_failed: bool = False
    aborted: bool = False
    duration_s: float = 0.0
    time_to_first_action_s: float | None = None
    loop: dict[str, Any] = field(default_factory=dict)
    stages_ms: dict[str, Any] = field(default_factory=dict)
    chunks: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, Any] = field(default_factory=dict)
    guard: dict[str, Any] = field(default_factory=dict)
    stale: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    recording: dict[str, Any] | None = None
    view: dict[str, Any] | None = None  # the live viewer (--view), when on
    seams: dict[str, Any] = field(default_factory=dict)
    expert_override: dict[str, Any] | None = None  # see reflex.config.bounds
    episodes: dict[str, Any] | None = None  # episodes sessions: per-episode outcomes, success rate
    motors_powered: bool = False  # an enable frame went out (unknown for a connector: assumed)
    # motors a stop could not confirm disabled: which, and when their own watchdog expires
    left_to_watchdog: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.errors or self.safe_stops or self.safe_stop_failures or self.aborted or self.left_to_watchdog
        )

    @property
    def exit_code(self) -> int:
        if self.safe_stop_failures or self.left_to_watchdog:  # a motor left to its watchdog: check the robot
            return EXIT_SAFE_STOP_FAILED
        if self.aborted:
            return EXIT_ABORTED
        if self.setup_failed:
            return EXIT_SETUP
        return EXIT_OK if self.ok else EXIT_SESSION_FAILED

    def add_loop_report(self, report: LoopReport, rate_hz: float, t_start: float) -> None:
        """The one place the loop's report becomes the result's loop sections."""
        self.steps = report.steps
        self.applied_steps = report.applied_steps
        if report.first_action_t is not None:
            self.time_to_first_action_s = report.first_action_t - t_start
        self.loop = {
            "rateHz": rate_hz,
            "latenessMs": report.lateness_ms,
            "overruns": report.overruns,
            "slowTicks": report.slow_ticks,
            "gc": report.gc,
            "lateWakeups": report.late_wakeups,
            "heldSteps": report.held_steps,
        }
        if report.stalls:
            self.loop["stalls"] = dict(report.stalls)
        self.stages_ms = dict(report.stages_ms)
        self.chunks.update(report.chunks)
        self.cameras = {name: dict(summary) for name, summary in report.cameras.items()}
        self.guard = dict(report.guard)
        self.stale = {"staleSteps": report.stale_steps, "skewEvents": report.skew_events}
        self.seams = dict(report.seams)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "config": self.config,
            "steps": self.steps,
            "appliedSteps": self.applied_steps,
            "safeStops": self.safe_stops,
            "errors": list(self.errors),
            "exitCode": self.exit_code,
            "mode": self.mode,
            "sessionId": self.session_id,
            "stopReason": self.stop_reason,
            "safeStopFailures": list(self.safe_stop_failures),
            "motorsPowered": self.motors_powered,
            "leftToWatchdog": list(self.left_to_watchdog),
            "durationS": round(self.duration_s, 4),
            "timeToFirstActionS": (
                None if self.time_to_first_action_s is None else round(self.time_to_first_action_s, 4)
            ),
            "loop": self.loop,
            "stagesMs": self.stages_ms,
            "chunks": self.chunks,
            "cameras": self.cameras,
            "guard": self.guard,
            "stale": self.stale,
            "seams": self.seams,
            "target": self.target,
            "recording": self.recording,
            "expertOverride": self.expert_override,
            **({"view": self.view} if self.view is not None else {}),
            **({"episodes": self.episodes} if self.episodes is not None else {}),
        }

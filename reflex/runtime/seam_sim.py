"""The real control loop in simulated time, for comparing execution settings (horizon, blend,
prefix) without a robot or a wall clock: used by the seam tests and ``bench/seam_bench.py``.

Everything the loop touches answers in the simulated time: the clock advances only when the loop
sleeps, the arm tracks each command exactly and stamps its state with that clock, and inference
takes a fixed simulated latency (the chunk is computed at once and handed over when the clock
reaches ``t_request + latency``). So a run is a pure function of its settings: no scheduler,
no load, no flakiness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reflex.ports import JointLayout, Observation, StateSample, Target, TargetInfo
from reflex.runtime.inference import InferenceResult


class SimClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class SimulatedWorker:
    """:class:`~reflex.runtime.inference.InferenceWorker`'s contract (one request in flight,
    non-blocking poll) in simulated time, with a fixed latency."""

    def __init__(self, target: Target, clock: SimClock, latency_s: float) -> None:
        self.target = target
        self.clock = clock
        self.latency_s = latency_s
        self.requests: list[Observation] = []
        self._in_flight: InferenceResult | None = None

    @property
    def busy(self) -> bool:
        return self._in_flight is not None

    def busy_for(self, now: float) -> float:
        return 0.0 if self._in_flight is None else now - self._in_flight.t_requested

    def submit(self, obs: Observation) -> None:
        if self._in_flight is not None:
            raise RuntimeError("an inference request is already in flight")
        self.requests.append(obs)
        t = self.clock()
        actions, error = None, None
        try:
            actions, _ = self.target.infer(obs)
        except Exception as exc:
            error = exc
        self._in_flight = InferenceResult(obs, t, t + self.latency_s, actions, {}, error)

    def poll(self) -> InferenceResult | None:
        result = self._in_flight
        if result is None or self.clock() < result.t_received:
            return None
        self._in_flight = None
        return result

    def wait(self, timeout: float) -> InferenceResult | None:
        result = self._in_flight
        if result is None:
            return None
        self.clock.t = max(self.clock.t, result.t_received)
        return self.poll()

    def close(self) -> None:
        self._in_flight = None


class TrackingArm:
    """A position-controlled arm that reaches every command by the next read (chunk-aware, so
    each command's chunk id is kept): the measured state is the previous command."""

    can_apply = True
    accepts_chunk_context = True

    def __init__(self, layout: JointLayout, clock: SimClock, start: np.ndarray) -> None:
        self.layout = layout
        self.clock = clock
        self.q = start.astype(float).copy()
        self.commands: list[np.ndarray] = []
        self.measured: list[np.ndarray] = []
        self.chunk_ids: list[int | None] = []
        self.steps: list[int] = []
        self.times: list[float] = []  # tick time of each command

    def connect(self) -> None: ...

    def enable(self) -> None: ...

    def read_state(self) -> StateSample:
        return StateSample(position=self.q.copy(), t_capture=self.clock())

    def apply(
        self, action: np.ndarray, step: int, chunk_id: int | None = None, t_target: float | None = None
    ) -> None:
        self.measured.append(self.q.copy())
        self.commands.append(np.asarray(action, dtype=float).copy())
        self.chunk_ids.append(chunk_id)
        self.steps.append(step)
        self.times.append(self.clock() if t_target is None else t_target)
        self.q = np.asarray(action, dtype=float).copy()

    def safe_stop(self, reason: str) -> None: ...

    def close(self) -> None: ...


@dataclass
class DisagreeingPolicy:
    """Chunks that follow one smooth reference trajectory (a slow sine per joint, in absolute
    time) but each sits at its own offset: ``offset`` alternates +/- between successive chunks,
    ``noise`` adds a seeded normal offset per chunk. ``reference(t)`` is the trajectory."""

    layout: JointLayout
    chunk_length: int = 50
    action_dt: float = 0.02
    offset: float = 0.0
    noise: float = 0.0
    amplitude: float = 0.3
    period_s: float = 2.0
    seed: int = 0
    step_at: float | None = None  # the goal jumps by ``step_size`` at this time; only chunks
    # inferred from an observation after it know (to measure how fast each blend follows)
    step_size: float = 0.0
    calls: int = 0
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def reference(self, t: np.ndarray | float) -> np.ndarray:
        centre = (self.layout.lower + self.layout.upper) / 2
        tt = np.atleast_1d(np.asarray(t, dtype=float))[:, None]
        phase = np.arange(self.layout.dim) * 0.4
        return centre + self.amplitude * np.sin(2 * math.pi * tt / self.period_s + phase)

    def connect(self) -> TargetInfo:
        return TargetInfo(kind="simulated", action_dim=self.layout.dim, state_dim=self.layout.dim,
                          chunk_length=self.chunk_length, action_dt=self.action_dt,
                          action_names=self.layout.names)

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        sign = 1.0 if self.calls % 2 == 0 else -1.0
        self.calls += 1
        shift = sign * self.offset + self.noise * self._rng.standard_normal(self.layout.dim)
        times = obs.t_capture + np.arange(self.chunk_length) * self.action_dt
        chunk = self.reference(times) + shift
        if self.step_at is not None and obs.t_capture >= self.step_at:
            chunk += self.step_size * (times >= self.step_at)[:, None]
        return chunk, {}

    def close(self) -> None: ...


@dataclass
class SimRun:
    report: Any  # LoopReport
    arm: TrackingArm
    worker: SimulatedWorker
    schedule: Any  # ChunkSchedule
    chunk_step_ms: list[float]  # per tick: time spent in the schedule (action_at), real ms


def run_simulated(
    policy: Target,
    *,
    steps: int,
    layout: JointLayout | None = None,
    start: np.ndarray | None = None,
    rate_hz: float = 50.0,
    latency_s: float = 0.03,
    horizon: int | None = None,
    blend: str = "none",
    blend_s: float = 0.1,
    ensemble_k: float = 0.01,
    prefix: bool = False,
    max_delta: float = 0.05,
    prefetch_margin_s: float = 0.05,
) -> SimRun:
    """Prime and run the real :class:`~reflex.runtime.loop.ControlLoop` for ``steps`` ticks with
    ``policy`` (a :class:`DisagreeingPolicy`, or any target: then give its ``layout``)."""
    from reflex.config.session import SessionConfig
    from reflex.runtime.cameras import SessionCameras
    from reflex.runtime.chunks import ChunkSchedule, ExecutionSettings
    from reflex.runtime.guard import ActionGuard
    from reflex.runtime.loop import ControlLoop
    from reflex.runtime.signals import SignalGate

    config = SessionConfig.model_validate({
        "mode": "apply_actions", "control_rate_hz": rate_hz, "max_steps": steps,
        "target": {"kind": "local", "export": "builtin:demo"}, "hardware": {"kind": "sim"},
        "safety": {"max_delta": max_delta, "max_state_age_ms": 1000.0, "max_hold_steps": 10 * steps + 1},
    })
    clock = SimClock()
    if isinstance(policy, DisagreeingPolicy):
        layout = layout or policy.layout
        start = policy.reference(clock())[0] if start is None else start
    assert layout is not None, "give the layout of the robot the policy drives"
    info = policy.connect()
    start = (layout.lower + layout.upper) / 2 if start is None else start
    arm = TrackingArm(layout, clock, np.clip(start, layout.lower, layout.upper))
    worker = SimulatedWorker(policy, clock, latency_s)
    settings = ExecutionSettings(horizon, blend, blend_s, ensemble_k)
    schedule = ChunkSchedule(True, prefetch_margin_s, settings, 1.0 / rate_hz)
    timed = _TimedSchedule(schedule)
    guard = ActionGuard(layout, max_delta)
    fill_prefix = prefix and info.accepts_prefix
    loop = ControlLoop(
        config, arm, SessionCameras(), worker, timed, guard,  # type: ignore[arg-type]
        layout.dim, info.action_dt, None, SignalGate(),
        prefix_length=info.chunk_length if fill_prefix else None, clock=clock, sleep=clock.sleep,
    )
    loop.prime(30.0)
    report = loop.run(clock())
    return SimRun(report, arm, worker, schedule, timed.ms)


class _TimedSchedule:
    """The schedule with its per-tick cost measured (for the bench's overhead figure)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.ms: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def action_at(self, t: float) -> Any:
        import time

        t0 = time.perf_counter()
        out = self._inner.action_at(t)
        self.ms.append((time.perf_counter() - t0) * 1e3)
        return out

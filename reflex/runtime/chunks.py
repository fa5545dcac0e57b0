"""Time-aligned execution of action chunks: hand-over, blending and prefetch timing.

A chunk inferred from an observation captured at ``t_origin`` holds action ``k`` for
``t_origin + k * dt``. The control loop asks for the action *for now*: actions whose time passed
while inference ran are skipped (counted), never replayed late; between two chunk actions the
command is interpolated when the control rate is higher than the chunk rate.

Hand-over (``execution.horizon``): without a horizon a new chunk takes charge as soon as it
arrives. With a horizon of ``h`` actions each chunk stays in charge for ``h * dt`` seconds from
the tick it took charge; the next one is requested early enough (measured latency x 1.5 plus
``prefetch_margin_s``) to be ready then, and waits until the horizon. A chunk that arrives after
its horizon takes charge at once and counts as a horizon miss.

Blending (``execution.blend``), always before the guard:

* ``none`` — the new chunk's trajectory from the switch on;
* ``crossfade`` — from the old chunk's time-aligned trajectory into the new one, the new one's
  weight rising linearly from the previous tick to ``blend_s`` after it (cascades nest);
* ``ensemble`` — ACT-style temporal ensembling: the weighted mean of every chunk in charge so far
  that still covers *now*, weight ``exp(-k * i)`` with ``i = 0`` for the oldest.

Everything here is a pure function of the chunks and the tick times it is given, so ``reflex
replay`` re-runs the same schedule on recorded ticks and reproduces the commands exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reflex.ports import ActionChunk, ChunkPrefix
from reflex.runtime.guard import GuardRejected, real_array
from reflex.runtime.seams import Seam, SeamMeter

BLENDS = ("none", "crossfade", "ensemble")
MAX_ENSEMBLE = 256  # chunks averaged at most (the oldest drop out first)


class ChunkInvalid(ValueError):
    """A chunk from the target has the wrong shape or non-finite values."""


def shaped_chunk(actions: np.ndarray, width: int) -> np.ndarray:
    """``actions`` as float64 (horizon, width); a single action counts as a chunk of one.

    The width is the robot's joint count: a target that does not declare its action width is
    checked here, on its first chunk (connect, before motors enable) and on every later one.
    """
    try:
        chunk = real_array(actions, "chunk")
    except GuardRejected as exc:
        raise ChunkInvalid(str(exc)) from None
    if chunk.ndim == 1:
        chunk = chunk[None, :]
    if chunk.ndim != 2 or chunk.shape[0] < 1 or chunk.shape[1] != width:
        raise ChunkInvalid(f"chunk has shape {chunk.shape}, expected (horizon, {width}): the robot has {width} joints")
    return chunk


def validate_chunk(actions: np.ndarray, width: int) -> np.ndarray:
    chunk = shaped_chunk(actions, width)
    if not np.all(np.isfinite(chunk)):
        raise ChunkInvalid("chunk contains NaN or Inf")
    return chunk


@dataclass(frozen=True)
class ExecutionSettings:
    """``execution`` of the session config, resolved against the target's ``action_dt``."""

    horizon: int | None = None  # actions each chunk stays in charge; None: until the next arrives
    blend: str = "none"
    blend_s: float = 0.1
    ensemble_k: float = 0.01

    def __post_init__(self) -> None:
        if self.blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {self.blend!r}")


def sample(chunk: ActionChunk, t: float, interpolate: bool, out: np.ndarray, clamp: bool) -> float | None:
    """Write the chunk's action for time ``t`` into ``out``; returns its fractional position, or
    None when the chunk ran out (``clamp``: hold its last action instead)."""
    position = (t - chunk.t_origin) / chunk.dt
    if position < 0.0:
        position = 0.0
    actions = chunk.actions
    last = actions.shape[0] - 1
    if position > last + 0.5 and not clamp:
        return None
    if not interpolate or position >= last:
        out[:] = actions[min(last, round(position))]
        return position
    i = int(position)
    frac = position - i
    if frac == 0.0:
        out[:] = actions[i]
    else:
        np.multiply(actions[i], 1 - frac, out=out)
        out += frac * actions[i + 1]
    return position


class ChunkSchedule:
    """The chunks being executed, how they are blended, and when the next one must be requested."""

    def __init__(
        self,
        interpolate: bool,
        prefetch_margin_s: float,
        execution: ExecutionSettings | None = None,
        period_s: float = 0.0,
    ) -> None:
        self.interpolate = interpolate
        self.prefetch_margin_s = prefetch_margin_s
        self.execution = execution or ExecutionSettings()
        self.period_s = period_s
        self.current: ActionChunk | None = None  # in charge: its id and position are recorded
        self.pending: ActionChunk | None = None  # arrived, waiting for the horizon
        self.skipped_actions = 0
        self.chunks_adopted = 0
        self.horizon_misses = 0
        self.seams = SeamMeter(period_s or 1.0)
        self._latency_estimate: float | None = None
        self._switch_at: float | None = None  # horizon mode: when the current chunk hands over
        self._last_t: float | None = None  # previous tick time
        self._layers: list[tuple[ActionChunk, float]] = []  # crossfade: (chunk, fade start), oldest first
        self._members: list[ActionChunk] = []  # ensemble: chunks in charge so far, oldest first
        self._weights = np.exp(-self.execution.ensemble_k * np.arange(2 * MAX_ENSEMBLE))
        # ensemble: the first chunk, when it took charge, how many copies it starts as
        self._seed: tuple[ActionChunk, float, int] | None = None
        self._out = self._tmp = self._ref = self._last_out = self._last_ref = np.zeros(0)
        self._window: _Window | None = None

    def clear(self) -> None:
        """Forget every chunk (a new episode starts from a fresh first chunk); counters stay."""
        self._close_window()
        self.current = self.pending = None
        self._switch_at = self._last_t = self._seed = None
        self._layers, self._members = [], []

    # -- arrivals ----------------------------------------------------------------------------
    def adopt(self, chunk: ActionChunk) -> int:
        """A new chunk arrived; returns how many of its actions were already in the past.
        It takes charge now (with a horizon: at the horizon, or at the next tick if it is the
        first)."""
        self.note_latency(chunk.t_received - chunk.t_requested)
        late = max(0, math.ceil((chunk.t_received - chunk.t_origin) / chunk.dt - 1e-9))
        late = min(late, chunk.horizon)
        self.skipped_actions += late
        self.chunks_adopted += 1
        if self._switch_at is not None and chunk.t_received > self._switch_at + self.period_s / 2:
            self.horizon_misses += 1
        if self.execution.horizon is None:
            self.take_over(chunk, self._last_t if self._last_t is not None else chunk.t_received)
        else:
            self.pending = chunk  # takes charge at the horizon (the first one at the next tick)
        return late

    def note_latency(self, latency: float) -> None:
        """One measured inference latency (replay feeds the recorded ones)."""
        est = self._latency_estimate
        # Track the slow side: a jump up is taken at once, a drop only slowly.
        self._latency_estimate = latency if est is None or latency > est else 0.9 * est + 0.1 * latency

    def take_over(self, chunk: ActionChunk, t: float) -> None:
        """``chunk`` takes charge at the tick ``t`` (used by replay, which knows the recorded
        hand-overs; live, :meth:`action_at` calls it when a pending chunk is due)."""
        if self.pending is chunk:
            self.pending = None
        if self._out.shape != (chunk.actions.shape[1],):
            dim = chunk.actions.shape[1]
            self._out, self._tmp, self._ref = np.zeros(dim), np.zeros(dim), np.zeros(dim)
            self._last_out, self._last_ref = np.zeros(dim), np.zeros(dim)
        self._close_window()
        had_output = self.current is not None and self._last_t is not None
        blend = self.execution.blend
        if blend == "crossfade" and had_output:
            assert self._last_t is not None
            self._layers.append((chunk, self._last_t))
        elif blend == "none" and had_output:
            self._layers = [self._layers[-1], (chunk, t)]  # the old one only for the seam metric
        else:
            self._layers = [(chunk, t)]
        if blend == "ensemble" and had_output:
            self._members.append(chunk)
            if len(self._members) > MAX_ENSEMBLE:
                del self._members[0]
        else:
            self._members = [chunk]
            self._seed = self._seed_copies(chunk, t) if blend == "ensemble" else None
        previous = self.current
        self.current = chunk
        horizon = self.execution.horizon
        self._switch_at = None if horizon is None else t + horizon * chunk.dt
        if previous is not None and had_output:
            steps = 1
            if blend == "crossfade":
                steps = max(1, math.ceil(self.execution.blend_s / self.period_s - 1e-9)) if self.period_s else 1
            self._window = _Window(chunk.chunk_id, t, steps)

    # -- each tick ---------------------------------------------------------------------------
    def action_at(self, t: float) -> tuple[np.ndarray, float] | None:
        """The (blended) action for tick ``t`` and the in-charge chunk's fractional position, or
        None when that chunk ran out. The array is reused: valid until the next call."""
        pending = self.pending
        if pending is not None and (
            self._switch_at is None or t >= self._switch_at - self.period_s / 2 or _ran_out(self.current, t)
        ):
            self.take_over(pending, t)
        chunk = self.current
        if chunk is None or _ran_out(chunk, t):
            self._last_t = t
            self._close_window()
            return None
        position = max(0.0, (t - chunk.t_origin) / chunk.dt)
        self._compose(t, self._out, exclude_newest=False, prune=True)
        window = self._window
        if window is not None:
            self._measure(window, t)
        self._last_out[:] = self._out
        self._last_t = t
        return self._out, position

    # -- prefetch ----------------------------------------------------------------------------
    def needs_next(self, t: float) -> bool:
        """Whether a request made now is due so its answer lands in time: at the horizon, or
        (without one) before the current chunk runs out."""
        if self.pending is not None:
            return False
        chunk = self.current
        if chunk is None:
            return True
        if self._switch_at is not None:
            return self._switch_at - t <= self.lead_s
        return chunk.t_end() - t <= self.lead_s

    @property
    def lead_s(self) -> float:
        """How long before it is needed the next chunk is requested."""
        return (self._latency_estimate or 0.0) * 1.5 + self.prefetch_margin_s

    @property
    def latency_estimate_s(self) -> float | None:
        return self._latency_estimate

    # -- RTC prefix ----------------------------------------------------------------------------
    def prefix_for(self, t_origin: float, length: int, dt: float) -> ChunkPrefix | None:
        """What the robot will command at ``t_origin + k * dt`` under the current plan, and how
        many of those rows are frozen (they run before a chunk requested now can take charge)."""
        chunk = self.current
        if chunk is None or self._out.size == 0:
            return None
        rows = np.empty((length, self._out.size))
        covered = 0
        for k in range(length):
            t = t_origin + k * dt
            if not self._compose(t, rows[k], exclude_newest=False):
                if k == 0:
                    return None
                rows[k] = rows[k - 1]  # past the plan's end: hold its last action, never zeros
            if (t - chunk.t_origin) / chunk.dt <= chunk.horizon - 1 + 1e-9:
                covered = k + 1
        takeover = self._switch_at if self._switch_at is not None else t_origin + (self._latency_estimate or 0.0)
        frozen = min(length, max(0, math.ceil((takeover - t_origin) / dt - 1e-9)))
        return ChunkPrefix(actions=rows, frozen=frozen, weights=prefix_weights(frozen, covered, length))

    # -- internals -----------------------------------------------------------------------------
    def _compose(self, t: float, out: np.ndarray, exclude_newest: bool, prune: bool = False) -> bool:
        """The blended command at ``t`` into ``out``; False if nothing covers ``t``. ``prune``
        (the live tick only) forgets chunks that can no longer contribute from ``t`` on."""
        blend = self.execution.blend
        if blend == "ensemble":
            return self._ensemble(t, out, exclude_newest, prune)
        layers = self._layers[:-1] if exclude_newest else self._layers
        if not layers:
            return False
        if blend == "none":
            sample(layers[-1][0], t, self.interpolate, out, clamp=True)
            return True
        tmp = self._tmp if out is not self._tmp else np.empty_like(out)
        first = 0
        for i in range(len(layers) - 1, 0, -1):  # a fully faded-in layer hides all older ones
            if t - layers[i][1] >= self.execution.blend_s:
                first = i
                break
        if first and prune:
            del self._layers[:first]
            layers = self._layers
            first = 0
        sample(layers[first][0], t, self.interpolate, out, clamp=True)
        for chunk, t_from in layers[first + 1 :]:
            w = (t - t_from) / self.execution.blend_s
            w = 0.0 if w < 0.0 else (1.0 if w > 1.0 else w)
            sample(chunk, t, self.interpolate, tmp, clamp=True)
            tmp -= out
            tmp *= w
            out += tmp
        return True

    def _seed_copies(self, chunk: ActionChunk, t: float) -> tuple[ActionChunk, float, int]:
        """The first chunk of an ensemble counts as the copies a steady state would hold (one per
        horizon it still covers), one copy leaving per horizon: so the second chunk enters with
        a steady-state weight instead of one half (no start-up seam)."""
        h = self.execution.horizon
        if h is None:
            return chunk, t, 1
        start = max(0, math.ceil((t - chunk.t_origin) / chunk.dt - 1e-9))
        return chunk, t, max(1, min(MAX_ENSEMBLE, (chunk.horizon - start) // h))

    def _ensemble(self, t: float, out: np.ndarray, exclude_newest: bool, prune: bool) -> bool:
        members = self._members[:-1] if exclude_newest else self._members
        tmp = self._tmp if out is not self._tmp else np.empty_like(out)
        out[:] = 0.0
        total = 0.0
        i = 0
        expired = 0
        seed = self._seed
        for chunk in members:
            if sample(chunk, t, self.interpolate, tmp, clamp=False) is None:
                expired += 1 if i == 0 else 0  # only a prefix of the oldest can be dropped
                continue
            copies = 1
            if seed is not None and chunk is seed[0] and seed[2] > 1:
                horizon_s = (self.execution.horizon or 1) * chunk.dt
                copies = max(1, seed[2] - int((t - seed[1]) / horizon_s + 1e-9))  # one leaves per horizon
            w = float(self._weights[i : i + copies].sum()) if copies > 1 else float(self._weights[i])
            tmp *= w
            out += tmp
            total += w
            i += copies
        if expired and prune:
            del self._members[: min(expired, len(self._members) - 1)]
        if total == 0.0:
            return False
        out /= total
        return True

    def _measure(self, window: _Window, t: float) -> None:
        ref = self._ref
        if not self._compose(t, ref, exclude_newest=True):
            # the old plan is gone: it had run out at the switch (nothing to measure), or the new
            # chunk has fully faded in (the window is over)
            if window.steps_done:
                self._close_window()
            else:
                self._window = None
            return
        if window.steps_done == 0:
            current = self.current
            assert current is not None
            sample(current, t, self.interpolate, self._tmp, clamp=True)  # the new trajectory alone
            window.gap = np.abs(self._tmp - ref)
            window.jump = np.abs(self._out - ref)
        else:
            # (u_t - u_{t-1}) - (r_t - r_{t-1})
            step = (self._out - self._last_out) - (ref - self._last_ref)
            assert window.jump is not None
            np.maximum(window.jump, np.abs(step), out=window.jump)
        self._last_ref[:] = ref
        window.steps_done += 1
        if window.steps_done >= window.steps:
            self._close_window()

    def _close_window(self) -> None:
        window, self._window = self._window, None
        if window is not None and window.gap is not None and window.jump is not None:
            self.seams.add(Seam(window.chunk_id, window.t, window.gap, window.jump, window.steps_done))


def _ran_out(chunk: ActionChunk | None, t: float) -> bool:
    return chunk is not None and (t - chunk.t_origin) / chunk.dt > chunk.horizon - 1 + 0.5


@dataclass
class _Window:
    """A seam being measured: from the switch until the blend has fully faded in."""

    chunk_id: int
    t: float
    steps: int
    steps_done: int = 0
    gap: np.ndarray | None = None
    jump: np.ndarray | None = None


def prefix_weights(frozen: int, covered: int, length: int) -> np.ndarray:
    """RTC's soft mask: 1 on the frozen rows, an exponential decay up to ``covered`` (the rows the
    current plan still covers), 0 beyond (Black et al. 2025; the "exp" schedule)."""
    w = np.zeros(length)
    end = max(frozen, min(covered, length))
    w[:frozen] = 1.0
    for i in range(frozen, end):
        c = (end - i) / (end - frozen + 1)
        w[i] = c * (math.exp(c) - 1) / (math.e - 1)
    return w


def horizon_problem(schedule: ChunkSchedule, chunk_length: int, dt: float, latency_s: float) -> str | None:
    """Why ``execution.horizon`` cannot be met with this latency and chunk length, or None.

    With a horizon of ``h`` actions the next chunk is requested ``lead = 1.5 x latency +
    prefetch_margin_s`` before the switch, so it takes charge at its own action ``ceil(lead /
    dt)`` and must hold ``h`` more (plus the crossfade, during which the old one still counts).
    A replan every ``h * dt`` seconds is only sustainable when that is longer than the lead.
    """
    execution = schedule.execution
    h = execution.horizon
    if h is None:
        return None
    lead = latency_s * 1.5 + schedule.prefetch_margin_s
    replan = h * dt
    if replan <= lead:
        need = math.floor(lead / dt) + 1
        return (f"{h} actions ({replan:.3f} s) cannot be met: inference takes {latency_s:.3f} s, so the "
                f"next chunk is requested {lead:.3f} s ahead (1.5 x latency + prefetch_margin_s); use "
                f"execution.horizon >= {need} or a faster target")
    start = math.ceil(lead / dt - 1e-9)
    fade = math.ceil(execution.blend_s / dt - 1e-9) if execution.blend == "crossfade" else 0
    if start + h + fade > chunk_length:
        most = chunk_length - start - fade
        return (f"{h} actions do not fit in chunks of {chunk_length}: each chunk takes charge at its "
                f"action {start} (inference {latency_s:.3f} s ahead)"
                + (f" and fades out over {fade} more" if fade else "")
                + (f"; use execution.horizon <= {most}" if most >= 1 else "; the target is too slow for these chunks"))
    return None

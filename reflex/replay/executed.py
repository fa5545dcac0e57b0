"""What the robot would have been commanded at each step with the replayed chunks.

Each recorded step names its chunk and its fractional position in it (``chunk_index``); the
replayed chunk is sampled at the same position with the session's interpolation setting and
passed through the same action guard (joint limits, per-step delta around the *recorded*
measured state). The result compares one-to-one with the recorded guarded action.

A session that blended its chunks (``execution.blend``) is re-run through the same
:class:`~reflex.runtime.chunks.ChunkSchedule` on the recorded tick times, each chunk taking charge
at the step the recording shows it did (docs/execution.md#replay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from reflex.ports import ActionChunk, ChunkPrefix
from reflex.replay.episode import Episode, EpisodeMeta, RecordedChunk, RecordedStep
from reflex.replay.layout import recorded_layout, unbounded_layout
from reflex.runtime.chunks import ChunkSchedule, ExecutionSettings, sample
from reflex.runtime.guard import ActionGuard, GuardRejected


@dataclass
class ExecutedActions:
    steps: np.ndarray  # control step numbers compared
    recorded: np.ndarray  # (n, dim)
    replayed: np.ndarray  # (n, dim)
    rejected_steps: list[int] = field(default_factory=list)  # the guard would have safe-stopped
    notes: list[str] = field(default_factory=list)


def session_guard(meta: EpisodeMeta) -> tuple[ActionGuard, bool, list[str]]:
    """The guard and interpolation setting of the recorded session (from its resolved config)."""
    notes: list[str] = []
    cfg = meta.config_resolved or {}
    layout = recorded_layout(meta)
    if layout is None:
        notes.append("joint limits of the recorded hardware are unknown: executed actions use the delta clamp only")
        layout = unbounded_layout(meta.joint_names)
    max_delta = (cfg.get("safety") or {}).get("max_delta", 0.05)
    interpolate = bool((cfg.get("chunking") or {}).get("interpolate", True))
    return ActionGuard(layout, max_delta), interpolate, notes


def recorded_execution(meta: EpisodeMeta, chunk_dt: float | None) -> ExecutionSettings:
    """The recorded session's ``execution`` settings, resolved as the session resolved them."""
    ex = (meta.config_resolved or {}).get("execution") or {}
    horizon = ex.get("horizon")
    if ex.get("horizon_s") is not None and chunk_dt:
        horizon = max(1, round(float(ex["horizon_s"]) / chunk_dt))
    return ExecutionSettings(
        horizon=None if horizon is None else int(horizon),
        blend=str(ex.get("blend", "none")),
        blend_s=float(ex.get("blend_s", 0.1)),
        ensemble_k=float(ex.get("ensemble_k", 0.01)),
    )


def executed_actions(episode: Episode, replayed: dict[int, np.ndarray]) -> ExecutedActions:
    guard, interpolate, notes = session_guard(episode.meta)
    chunks = {c.chunk_id: c for c in episode.chunks}
    execution = recorded_execution(episode.meta, next(iter(chunks.values())).dt if chunks else None)
    if execution.blend == "none":
        return _compare(episode, guard, notes, lambda step: _hard(step, replayed, interpolate))
    # Blended: re-run the session's schedule on the recorded ticks, each chunk taking charge at
    # the step the recording says it did, so the blend sees the same chunks at the same times.
    schedule = ChunkSchedule(interpolate, 0.0, execution, 1.0 / episode.meta.control_rate_hz)
    in_charge: list[int | None] = [None]  # the chunk in charge, and whether it can be rebuilt
    broken = [False]

    def blended(step: RecordedStep) -> np.ndarray | None:
        if step.chunk_id is not None and step.chunk_id != in_charge[0]:
            in_charge[0] = step.chunk_id
            rec, actions = chunks.get(step.chunk_id), replayed.get(step.chunk_id)
            broken[0] = rec is None or actions is None or actions.shape[1] != len(episode.meta.joint_names)
            if rec is not None and actions is not None and not broken[0]:
                chunk = ActionChunk(rec.chunk_id, actions, rec.t_origin, rec.dt, rec.obs_step,
                                    rec.t_requested, rec.t_received)
                schedule.take_over(chunk, step.t_tick)
        planned = schedule.action_at(step.t_tick)  # every tick, as live: the blend's clock
        return None if planned is None or broken[0] else planned[0]

    notes.append(f"executed actions re-run execution.blend {execution.blend}"
                 + (f", horizon {execution.horizon}" if execution.horizon else ""))
    return _compare(episode, guard, notes, blended)


def _hard(step: RecordedStep, replayed: dict[int, np.ndarray], interpolate: bool) -> np.ndarray | None:
    """A hard switch: the recorded chunk sampled at the recorded position."""
    if step.chunk_id is None or step.chunk_index is None:
        return None
    chunk = replayed.get(step.chunk_id)
    if chunk is None:
        return None
    # A chunk starting at t=0 with dt=1 makes the recorded chunk_index the sampling time.
    out = np.empty(chunk.shape[1])
    position = sample(ActionChunk(step.chunk_id, chunk, 0.0, 1.0, 0, 0.0, 0.0), step.chunk_index, interpolate,
                      out, clamp=False)
    return None if position is None else out


def _compare(
    episode: Episode, guard: ActionGuard, notes: list[str], planned_at: Callable[[RecordedStep], np.ndarray | None]
) -> ExecutedActions:
    numbers: list[int] = []
    rec_rows: list[np.ndarray] = []
    rep_rows: list[np.ndarray] = []
    rejected: list[int] = []
    dim = len(episode.meta.joint_names)
    for step in episode.steps:
        planned = planned_at(step)
        if step.action is None or step.chunk_id is None or step.chunk_index is None:
            continue  # a held step: nothing was commanded
        if planned is None or planned.shape != (dim,):
            continue
        try:
            action, _ = guard.check(planned, step.state)
        except GuardRejected:
            rejected.append(step.step)
            continue
        numbers.append(step.step)
        rec_rows.append(step.action)
        rep_rows.append(action)
    empty = np.zeros((0, dim))
    return ExecutedActions(
        np.asarray(numbers, dtype=int),
        np.stack(rec_rows) if rec_rows else empty,
        np.stack(rep_rows) if rep_rows else empty,
        rejected,
        notes,
    )


def recorded_prefixes(episode: Episode, chunk_length: int) -> dict[int, ChunkPrefix]:
    """The RTC prefix each recorded chunk was requested with (docs/execution.md), rebuilt by
    re-running the session's schedule on the recorded ticks and chunks, in the order the live loop
    did: a hand-over on arrival, then the request, then the tick's action."""
    _, interpolate, _ = session_guard(episode.meta)
    chunks = {c.chunk_id: c for c in episode.chunks}
    if not chunks:
        return {}
    first = min(chunks)
    execution = recorded_execution(episode.meta, chunks[first].dt)
    schedule = ChunkSchedule(interpolate, 0.0, execution, 1.0 / episode.meta.control_rate_hz)
    requested_at: dict[int, list[int]] = {}
    for chunk_id, rec in chunks.items():
        if chunk_id != first:  # the first chunk was requested with no plan
            requested_at.setdefault(rec.obs_step, []).append(chunk_id)
    out: dict[int, ChunkPrefix] = {}
    in_charge: int | None = None
    for step in episode.steps:
        switch = step.chunk_id is not None and step.chunk_id != in_charge and step.chunk_id in chunks
        if switch and execution.horizon is None:
            in_charge = _take_over(schedule, chunks[step.chunk_id], step.t_tick)  # type: ignore[index]
        for chunk_id in requested_at.get(step.step, ()):
            prefix = schedule.prefix_for(chunks[chunk_id].t_origin, chunk_length, chunks[chunk_id].dt)
            if prefix is not None:
                out[chunk_id] = prefix
        if switch and execution.horizon is not None:
            in_charge = _take_over(schedule, chunks[step.chunk_id], step.t_tick)  # type: ignore[index]
        schedule.action_at(step.t_tick)
    return out


def _take_over(schedule: ChunkSchedule, rec: RecordedChunk, t: float) -> int:
    schedule.note_latency(rec.t_received - rec.t_requested)
    schedule.take_over(ActionChunk(rec.chunk_id, rec.actions, rec.t_origin, rec.dt, rec.obs_step,
                                   rec.t_requested, rec.t_received), t)
    return rec.chunk_id

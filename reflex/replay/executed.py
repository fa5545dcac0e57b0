"""What the robot would have been commanded at each step with the replayed chunks.

Each recorded step names its chunk and its fractional position in it (``chunk_index``); the
replayed chunk is sampled at the same position with the session's interpolation setting and
passed through the same action guard (joint limits, per-step delta around the *recorded*
measured state). The result compares one-to-one with the recorded guarded action.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reflex.ports import ActionChunk
from reflex.replay.episode import Episode, EpisodeMeta
from reflex.replay.layout import recorded_layout, unbounded_layout
from reflex.runtime.chunks import ChunkSchedule
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


def executed_actions(episode: Episode, replayed: dict[int, np.ndarray]) -> ExecutedActions:
    guard, interpolate, notes = session_guard(episode.meta)
    schedule = ChunkSchedule(interpolate, 0.0)
    numbers: list[int] = []
    rec_rows: list[np.ndarray] = []
    rep_rows: list[np.ndarray] = []
    rejected: list[int] = []
    dim = len(episode.meta.joint_names)
    for step in episode.steps:
        if step.action is None or step.chunk_id is None or step.chunk_index is None:
            continue  # a held step: nothing was commanded
        chunk = replayed.get(step.chunk_id)
        if chunk is None or chunk.shape[1] != dim:
            continue
        # A chunk starting at t=0 with dt=1 makes the recorded chunk_index the sampling time.
        schedule.current = ActionChunk(step.chunk_id, chunk, 0.0, 1.0, 0, 0.0, 0.0)
        planned = schedule.action_at(step.chunk_index)
        if planned is None:
            continue
        try:
            action, _ = guard.check(planned[0], step.state)
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

"""Open-loop evaluation against a demonstration: the policy's chunk at a frame vs the actions that follow.

A dataset Reflex did not record has no policy chunks; what it has is what the demonstrator did.
For a scored frame ``k`` the "recorded chunk" is the demonstrated actions ``k .. k+H-1`` (LeRobot's
convention: the action of frame ``k`` is the one commanded after observing it), so the usual
per-joint figures (MSE, max abs, cosine, per episode and overall) compare the policy's first ``H``
actions with them. Frames are sampled every ``every`` frames to stay fast; frames with fewer than
``H`` demonstrated actions after them (the end of each episode) are not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

from reflex.replay.episode import Episode, RecordedChunk, RecordingError

DEFAULT_HORIZON = 16  # when neither --horizon nor the target declares its chunk length


@dataclass
class DemonstrationPlan:
    horizon: int
    every: int
    frames: int  # frames in the episode
    scored: int  # frames scored

    def to_json(self) -> dict[str, int]:
        return {"horizon": self.horizon, "every": self.every, "frames": self.frames, "framesScored": self.scored}


def demonstration_chunks(episode: Episode, horizon: int, every: int) -> tuple[list[RecordedChunk], DemonstrationPlan]:
    """One chunk per scored frame: the demonstrated actions that follow it."""
    actions = episode.demonstration
    if actions is None:
        raise RecordingError(
            episode.label, "no demonstrated actions to compare with: map the action feature or topic "
            "(--map action=KEY)"
        )
    dt = 1.0 / episode.meta.control_rate_hz
    chunks = []
    for k in range(0, len(actions) - horizon + 1, every):
        step = episode.steps[k]
        chunks.append(RecordedChunk(
            chunk_id=k, obs_step=step.step, t_origin=step.t_state, dt=dt, t_requested=step.t_tick,
            t_received=step.t_tick, actions=actions[k : k + horizon],
        ))
    return chunks, DemonstrationPlan(horizon, every, len(actions), len(chunks))

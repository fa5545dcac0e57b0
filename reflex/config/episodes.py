"""``episodes:``: a session run as N trials, each its own recorded episode with its own task,
a reset between them and an outcome per trial (docs/episodes.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from reflex.config.base import StrictModel

MAX_EPISODES = 10_000
MAX_RERECORDS = 100  # re-record labels in one session, so a stuck key cannot loop forever


class ResetConfig(StrictModel):
    """What happens between two episodes."""

    kind: Literal["none", "pose", "wait", "command"] = Field(
        "none",
        description="none: the next episode starts at once; pose: the robot is driven to `pose` "
        "through the guard (max_delta per step, joint limits; apply_actions only: dry_run never "
        "moves); wait: the operator resets the scene and presses Enter (the motors hold meanwhile); "
        "command: a subprocess connector's own reset (the contract's optional 'reset' request; "
        "apply_actions only).",
    )
    pose: list[float] | None = Field(
        None, max_length=256, description="pose: the joint positions to reset to (one per joint)."
    )
    tolerance: float = Field(
        0.01, gt=0, le=1.0, description="pose: the reset is done when every joint is this close to the pose."
    )
    max_steps: int = Field(
        600, ge=1, le=1_000_000,
        description="pose: control steps the reset may take; not there by then is an incident (safe stop).",
    )
    timeout_s: float = Field(
        60.0, gt=0, le=3600, description="command: how long the connector's reset may take (else an incident)."
    )

    @model_validator(mode="after")
    def _pose_given(self) -> ResetConfig:
        if self.kind == "pose" and not self.pose:
            raise ValueError("reset.kind 'pose' needs reset.pose (one position per joint)")
        return self


class EpisodesConfig(StrictModel):
    """Run the session as ``count`` episodes of ``steps`` (or ``duration_s``) each."""

    count: int = Field(ge=1, le=MAX_EPISODES, description="Episodes to record.")
    steps: int | None = Field(None, ge=1, le=100_000_000, description="Control steps per episode.")
    duration_s: float | None = Field(
        None, gt=0, le=86_400,
        description="Seconds per episode, as control steps at control_rate_hz (give steps or duration_s).",
    )
    tasks: list[str] = Field(
        default_factory=list, max_length=MAX_EPISODES,
        description="The task of each episode: empty uses `task` for all, one entry is used for all, "
        "otherwise one per episode.",
    )
    reset: ResetConfig = Field(ResetConfig(), description="Between episodes: none, a reset pose, or wait for Enter.")
    labels: Literal["none", "stdin", "connector"] = Field(
        "none",
        description="Who labels each episode's outcome: none (outcome 'done'), the operator on stdin "
        "after each episode (one key at a terminal, one line from a pipe): s(uccess), f(ailure), "
        "r(e-record: the episode is discarded and run again), q (stop: no more episodes); or "
        "connector: the outcome a subprocess connector's reset reply reports (needs reset.kind command).",
    )

    @model_validator(mode="after")
    def _length(self) -> EpisodesConfig:
        if (self.steps is None) == (self.duration_s is None):
            raise ValueError("episodes: give the length of an episode as steps or duration_s (one of them)")
        if self.labels == "connector" and self.reset.kind != "command":
            raise ValueError("episodes.labels 'connector' reads the outcome from the connector's reset reply: "
                             "set reset.kind: command")
        if len(self.tasks) > 1 and len(self.tasks) != self.count:
            raise ValueError(f"episodes.tasks has {len(self.tasks)} entries for {self.count} episodes "
                             "(give none, one, or one per episode)")
        return self

    def steps_at(self, rate_hz: float) -> int:
        if self.steps is not None:
            return self.steps
        assert self.duration_s is not None
        return max(1, round(self.duration_s * rate_hz))

    def task_for(self, index: int, default: str) -> str:
        if not self.tasks:
            return default
        return self.tasks[0] if len(self.tasks) == 1 else self.tasks[index]

"""Config of the replay hardware: which recording to serve, and what happens at its end."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reflex.config.base import BuildContext, StrictModel
from reflex.hardware.base import HardwareSpec
from reflex.ports import Hardware
from reflex.replay.mapping import DatasetMapping


class ReplayConfig(StrictModel):
    recording: str = Field(
        description="Recording to play back: a session directory, a format directory or a recording file "
        "(relative to this config file)."
    )
    format: str | None = Field(None, description="Recorded format to read (default: the best one found).")
    episode: int = Field(0, ge=0, description="Episode to play when the recording holds several.")
    at_end: Literal["error", "stop", "loop"] = Field(
        "error",
        description="When the recording runs out: 'error' stops the session with an error naming the "
        "recorded step count (set max_steps or duration_s to at most that), 'stop' ends the session "
        "cleanly (stopReason source_exhausted), 'loop' starts over.",
    )
    partial: bool = Field(False, description="Play the complete part of a truncated recording.")
    mapping: DatasetMapping | None = Field(
        None,
        description="A dataset not recorded by Reflex (LeRobot v3.0 from any writer, MCAP with Foxglove "
        "JointStates and image topics): which keys or topics are the state and the cameras. Default: "
        "LeRobot's usual names (observation.state, observation.images.*).",
    )


class ReplayHardwareSpec(HardwareSpec):
    """Plays a recorded session back at its original timing: the recorded joint states, and the
    recorded cameras (served by the hardware; do not list them under ``cameras``). It never moves
    anything, so only ``mode: dry_run`` is allowed."""

    kind: Literal["replay"] = "replay"
    config: ReplayConfig

    def can_apply(self) -> bool:
        return False

    def build(self, ctx: BuildContext) -> Hardware:
        from reflex.hardware.replay.robot import ReplayHardware

        return ReplayHardware(self.config, ctx.resolve_path(self.config.recording))

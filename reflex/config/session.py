"""The top-level session model. Kind unions are assembled from each port's ``kinds`` module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from reflex.cameras.base import CameraSpec, PluginCameraSpec
from reflex.cameras.kinds import BUILTIN_CAMERAS
from reflex.config.base import StrictModel, kind_union
from reflex.config.bounds import sensible
from reflex.config.episodes import EpisodesConfig
from reflex.config.loop import LoopConfig
from reflex.config.stop import StopConfig
from reflex.hardware.base import HardwareSpec, PluginHardwareSpec
from reflex.hardware.kinds import BUILTIN_HARDWARE
from reflex.recording.formats import KNOWN_FORMATS
from reflex.targets.base import PluginTargetSpec, TargetSpec
from reflex.targets.kinds import BUILTIN_TARGETS

if TYPE_CHECKING:  # type checkers see the common base of each union
    HardwareBlock = HardwareSpec
    CameraBlock = CameraSpec
    TargetBlock = TargetSpec
else:
    HardwareBlock = kind_union(BUILTIN_HARDWARE, PluginHardwareSpec)
    CameraBlock = kind_union(BUILTIN_CAMERAS, PluginCameraSpec)
    TargetBlock = kind_union(BUILTIN_TARGETS, PluginTargetSpec)


class SafetyConfig(StrictModel):
    """Limits the guard enforces on every command, and how stale data is handled."""

    max_delta: float | list[float] = Field(
        0.05,
        json_schema_extra=sensible(
            None, 0.5, "0.5 rad (29 degrees) in one control step is already a violent jump; "
            "larger values no longer limit anything"
        ),
        description="Largest change per control step from the measured position (rad for arm "
        "joints, normalised units for grippers); one number for all joints or one per joint.",
    )
    max_state_age_ms: float = Field(
        100.0,
        gt=0,
        json_schema_extra=sensible(None, 1000, "a state older than a second no longer describes a moving arm"),
        description="A state sample older than this is stale and never used.",
    )
    max_skew_ms: float | None = Field(
        None,
        gt=0,
        json_schema_extra=sensible(None, 1000, "images and state a second apart describe different scenes"),
        description="Largest spread of capture times inside one observation.",
    )
    on_stale: Literal["hold", "safe_stop"] = Field(
        "hold", description="What a step with stale data does: hold the last command, or safe-stop."
    )
    max_hold_steps: int = Field(
        100,
        ge=1,
        json_schema_extra=sensible(None, 10_000, "holding longer (minutes at usual rates) hides a dead "
                                   "source instead of stopping"),
        description="Consecutive held steps (stale data, no chunk) before a safe stop.",
    )
    first_chunk_timeout_s: float = Field(
        30.0,
        gt=0,
        json_schema_extra=sensible(None, 600, "loading a large model on a remote GPU takes minutes, not hours"),
        description="How long connect waits for the target's first valid chunk.",
    )
    infer_timeout_s: float = Field(
        5.0,
        gt=0,
        json_schema_extra=sensible(None, 60, "an answer a minute late is useless to a robot in motion"),
        description="An inference request taking longer than this is an error.",
    )
    home_on_stop: bool = Field(
        False, description="Drive home on a clean stop (apply_actions only; never in dry_run)."
    )
    max_command_gap_ms: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="Longest gap between two commands to the robot while its motors are live (a runner "
        "freeze, a slow apply): a longer one ends the session ok: false (a safe stop), named in "
        "loop.stalls. Default 150 ms (well under a YAM motor's 400 ms watchdog); a connector that "
        "runs a process per call is only measured unless this is set.",
    )
    stop: StopConfig = Field(
        StopConfig(), description="What a safe stop leaves the robot doing (hold, damp or disable)."
    )

    @field_validator("max_delta")
    @classmethod
    def _positive(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(v <= 0 for v in values):
            raise ValueError("max_delta must be > 0 (one number, or one per joint)")
        return value


class RecordConfig(StrictModel):
    """Recording is on by default; ``--record`` / ``--format`` / ``--no-record`` override this."""

    enabled: bool = Field(True, description="Record this session.")
    formats: list[str] = Field(["jsonl"], min_length=1, description="Recording formats to write.")
    dir: str | None = Field(
        None, description="Recording directory (default ~/.reflex/recordings/<user>/<session>/)."
    )
    queue_size: int = Field(1024, ge=8, description="Items (steps) buffered per format before dropping.")
    queue_budget_mb: float = Field(
        256.0, gt=0, le=65536,
        description="Memory all recorder queues together may hold, in MiB (a frame queued for several "
        "formats counts once; one format may hold at most half). A format that does not fit first "
        "drops camera frames, then whole steps; both are counted, and dropping a whole step is a "
        "recording failure handled by on_error.",
    )
    images: bool = Field(True, description="Write camera images.")
    image_encoding: Literal["lossy", "lossless"] = Field(
        "lossy",
        description="How every format stores camera images: 'lossy' (JPEG; H.264 video for LeRobot) is "
        "small and cheap; 'lossless' (PNG) is larger and slower to write but lets `reflex replay` "
        "reproduce an image policy exactly.",
    )
    on_error: Literal["safe_stop", "continue"] = Field(
        "safe_stop",
        description="A format that fails mid-session (e.g. disk full): safe-stop, or keep running "
        "with the recording marked degraded (the result still reports the error).",
    )
    isolation: Literal["thread", "process"] = Field(
        "thread",
        description="Where the recorders run: 'thread' (writer threads in the session's process) or "
        "'process' (a child process fed through shared memory, so the recorders never hold the control "
        "loop's interpreter lock; costs a process and a copy of each frame; choose it for many cameras "
        "or with loop.realtime). A quarter of queue_budget_mb (at most 32 MiB, in /dev/shm) then carries the frames "
        "to the child.",
    )

    @field_validator("formats")
    @classmethod
    def _known(cls, formats: list[str]) -> list[str]:
        unknown = [f for f in formats if f not in KNOWN_FORMATS]
        if unknown:
            raise ValueError(
                f"unknown recording format(s) {unknown}; expected one of {sorted(KNOWN_FORMATS)}"
            )
        return formats


class ChunkingConfig(StrictModel):
    """How action chunks are requested and executed."""

    prefetch_margin_s: float = Field(
        0.05,
        ge=0,
        json_schema_extra=sensible(None, 10, "a chunk requested more than 10 s early acts on an old scene"),
        description="Request the next chunk this long (plus the measured inference time) before "
        "the current one runs out.",
    )
    interpolate: bool = Field(
        True, description="Interpolate between chunk actions when the control rate is higher."
    )


class ExpertOverride(StrictModel):
    """An explicit, recorded decision to run some fields outside their sensible range."""

    reason: str = Field(min_length=10, max_length=500, description="Why: kept in the result and the recording.")
    allow: list[str] = Field(
        min_length=1,
        max_length=64,
        description="YAML paths of the fields allowed outside their range, e.g. 'safety.max_delta'.",
    )


class ExecutionConfig(StrictModel):
    """How chunks hand over: the replanning horizon, seam blending, RTC prefix (docs/execution.md)."""

    horizon: int | None = Field(
        None,
        ge=1,
        le=100000,
        description="Actions of each chunk executed before the next chunk takes over (openpi's "
        "action_horizon); the next request is timed to be ready then. null: a chunk runs until "
        "the next one arrives (set by prefetch_margin_s). Give horizon or horizon_s, not both.",
    )
    horizon_s: float | None = Field(
        None,
        gt=0,
        json_schema_extra=sensible(None, 60, "a chunk executed open-loop for over a minute ignores the scene"),
        description="The horizon in seconds (rounded to whole actions of the target's action_dt).",
    )
    blend: Literal["none", "crossfade", "ensemble"] = Field(
        "none",
        description="At a chunk switch: none (hard switch), crossfade (from the old chunk's "
        "trajectory into the new one over blend_s), ensemble (ACT-style weighted mean of every "
        "chunk covering now). Always before the guard.",
    )
    blend_s: float = Field(
        0.1,
        gt=0,
        json_schema_extra=sensible(None, 5, "a crossfade longer than 5 s lags the policy badly"),
        description="crossfade: seconds from the old trajectory into the new one.",
    )
    ensemble_k: float = Field(
        0.01,
        ge=-10,
        le=10,
        description="ensemble: chunk i (0 = the oldest covering now) weighs exp(-k * i); k > 0 "
        "favours older chunks (ACT's 0.01), 0 is a plain mean, k < 0 favours newer ones.",
    )
    prefix: bool = Field(
        True,
        description="Fill the prefix inputs of an export that declares them (RTC-style prefix "
        "conditioning): the policy is told what will still run while it infers.",
    )

    @model_validator(mode="after")
    def _one_horizon(self) -> ExecutionConfig:
        if self.horizon is not None and self.horizon_s is not None:
            raise ValueError("give execution.horizon (actions) or execution.horizon_s (seconds), not both")
        return self


class SessionConfig(StrictModel):
    """One robot session: where inference runs, which robot, how fast, how safely, what is kept."""

    mode: Literal["dry_run", "apply_actions"] = Field(
        "dry_run", description="dry_run never moves anything; apply_actions drives the robot."
    )
    control_rate_hz: float = Field(30.0, gt=0, le=1000, description="Control loop rate.")
    max_steps: int = Field(0, ge=0, description="Control steps to run; 0 = until stopped.")
    duration_s: float | None = Field(
        None, gt=0, description="Stop after the control loop ran this many seconds (set-up not counted)."
    )
    expert_override: ExpertOverride | None = Field(
        None,
        description="Deliberately allow the listed fields outside their sensible range (see "
        "docs/safety.md); stamped into the result and the recording.",
    )
    task: str = Field("", description="Instruction text sent with every observation.")
    target: TargetBlock = Field(description="Where inference runs.")
    hardware: HardwareBlock = Field(description="The robot: {kind, config}.")
    cameras: dict[str, CameraBlock] = Field(
        default_factory=dict, description="Camera name -> camera block; names are policy image keys."
    )
    safety: SafetyConfig = Field(SafetyConfig(), description="Guard limits and stale-data policy.")
    record: RecordConfig = Field(RecordConfig(), description="What is recorded, where, in which formats.")
    chunking: ChunkingConfig = Field(ChunkingConfig(), description="Chunk prefetch and interpolation.")
    execution: ExecutionConfig = Field(
        ExecutionConfig(), description="Replanning horizon, seam blending, prefix conditioning."
    )
    loop: LoopConfig = Field(
        LoopConfig(), description="The control-loop thread: real-time scheduling, CPU pinning."
    )
    episodes: EpisodesConfig | None = Field(
        None, description="Run the session as episodes: count, length, task per episode, reset, outcome labels."
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> SessionConfig:
        if self.mode == "apply_actions" and not self.hardware.can_apply():
            raise ValueError(
                f"hardware.kind '{self.hardware.kind}': mode apply_actions needs a connector "
                "that can apply actions (e.g. set hardware.config.action_command)"
            )
        layout = self.hardware.layout()
        delta = self.safety.max_delta
        if layout is not None and isinstance(delta, list) and len(delta) != layout.dim:
            raise ValueError(f"safety.max_delta has {len(delta)} entries, hardware has {layout.dim} joints")
        eps = self.episodes
        if eps is not None and (self.max_steps or self.duration_s):
            raise ValueError("with episodes, the length is episodes.steps / episodes.duration_s: "
                             "leave max_steps and duration_s unset")
        if eps is not None and eps.reset.pose is not None and layout is not None and len(eps.reset.pose) != layout.dim:
            raise ValueError(f"episodes.reset.pose has {len(eps.reset.pose)} entries, hardware has {layout.dim} joints")
        for name, camera in self.cameras.items():
            builtin_hw = ":" not in self.hardware.kind  # plugins are checked when built
            if camera.kind == "sim" and builtin_hw and self.hardware.kind != "sim":
                raise ValueError(f"cameras.{name}: kind 'sim' needs hardware.kind 'sim'")
        return self

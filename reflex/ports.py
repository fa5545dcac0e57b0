"""The four ports the session runner knows about: hardware, camera, target, recorder.

Everything the control loop touches goes through these protocols; each concrete kind lives in
its own module (``reflex/hardware/<kind>``, ``reflex/cameras/<kind>``, ``reflex/targets/<kind>``,
``reflex/recording/<format>``) next to its pydantic config model.

Clock convention: every ``t_*`` field is ``time.monotonic()`` seconds (CLOCK_MONOTONIC, shared
by all processes of one host, so a camera publisher in another process stamps on the same clock).
Wall-clock time is only attached by recorders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

# ---------------------------------------------------------------------------------------------
# Data carried between the ports
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JointLayout:
    """Names and limits of the state/action vector a robot exposes.

    ``units`` (one per joint, e.g. ``rad``, ``m``, ``normalized``) is optional; when both the
    robot and the policy export declare units, the session refuses a mismatch.
    Every robot takes absolute joint position targets.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    units: tuple[str, ...] | None = None

    @property
    def dim(self) -> int:
        return len(self.names)

    def __post_init__(self) -> None:
        if self.lower.shape != (self.dim,) or self.upper.shape != (self.dim,):
            raise ValueError("joint limits must have one entry per joint name")
        if np.any(self.lower > self.upper):
            raise ValueError("a lower joint limit is above its upper limit")
        if self.units is not None and len(self.units) != self.dim:
            raise ValueError("joint units must have one entry per joint name")


@dataclass
class StateSample:
    """One measurement of the robot's joint state."""

    position: np.ndarray  # float64, shape (dim,)
    t_capture: float  # monotonic seconds when the measurement was taken
    velocity: np.ndarray | None = None
    effort: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Frame:
    """One camera image: HxWx3 uint8, RGB. A camera never writes into an image it handed out
    (the runner passes the same array to the policy and to recorders without copying)."""

    image: np.ndarray
    t_capture: float
    seq: int


@dataclass
class ChunkPrefix:
    """RTC-style prefix conditioning (docs/execution.md): the plan the robot is executing,
    aligned to the observation it goes with.

    Row ``k`` of ``actions`` is what will be commanded at ``t_capture + k * action_dt`` (robot
    units; past the plan's end its last action is held, never zeros). The first ``frozen`` rows run
    before a chunk requested now can take charge; ``weights`` is the soft mask (1 on the frozen
    rows, decaying to 0 where the plan ends)."""

    actions: np.ndarray  # (chunk_length, action_dim)
    frozen: int
    weights: np.ndarray  # (chunk_length,)


@dataclass
class Observation:
    """What the policy sees for one inference request."""

    step: int
    state: StateSample
    images: dict[str, Frame]
    task: str
    prefix: ChunkPrefix | None = None  # filled only for targets that declare a prefix input

    @property
    def t_capture(self) -> float:
        """The oldest capture time in the observation: actions are aligned to it."""
        times = [self.state.t_capture, *(f.t_capture for f in self.images.values())]
        return min(times)


@dataclass
class ActionChunk:
    """A sequence of actions, action ``k`` intended for ``t_origin + k * dt``."""

    chunk_id: int
    actions: np.ndarray  # float64, shape (horizon, dim)
    t_origin: float  # capture time of the observation the chunk was inferred from
    dt: float  # seconds between consecutive actions
    obs_step: int  # control step whose observation produced the chunk
    t_requested: float
    t_received: float
    timing: dict[str, float] = field(default_factory=dict)  # e.g. server_ms, network_ms
    request_id: str | None = None  # the server's id of the answer (remote targets), for its logs

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    def t_end(self) -> float:
        return self.t_origin + (self.horizon - 1) * self.dt


@dataclass(frozen=True)
class TargetInfo:
    """What a connected inference target declares about itself.

    ``None`` means not declared (unknown): it never blocks a session; anything declared must
    match the robot (``reflex/runtime/target_fit.py``). The action width is then checked on the
    first chunk, before motors are enabled.
    """

    kind: str
    action_dim: int | None
    state_dim: int | None
    chunk_length: int | None
    action_dt: float
    image_keys: tuple[str, ...] = ()
    action_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    # export manifest's action_semantics (docs/export-format.md), when the target knows it
    action_semantics: dict[str, Any] | None = None
    providers: tuple[str, ...] = ()
    model_hash: str | None = None
    seed: int | None = None
    accepts_prefix: bool = False  # the policy takes RTC prefix inputs (Observation.prefix)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class GuardEvent:
    """Something the action guard changed or refused."""

    kind: str  # "clamp_limit" | "clamp_delta" | "reject_width" | "reject_nonfinite"
    joints: tuple[str, ...]
    detail: str = ""


@dataclass
class StepRecord:
    """Everything recorded for one control step. Built on the control thread, written elsewhere."""

    step: int
    t_tick: float
    state: StateSample
    frames: dict[str, Frame]  # only frames that are new since the previous step
    action: np.ndarray | None  # the guarded action (sent in apply_actions, would-be in dry_run)
    applied: bool
    chunk_id: int | None
    chunk_index: float | None  # fractional position of ``t_tick`` in the chunk
    chunk_age_s: float | None
    guard_events: list[GuardEvent]
    task: str
    timing_ms: dict[str, float]
    episode: int | None = None  # episodes sessions: the take (attempt) this step belongs to


@dataclass
class SessionEvent:
    """A session-level event (safe stop, stale data, chunk arrival, ...)."""

    kind: str
    t: float
    step: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionMeta:
    """Stamped once per recording."""

    session_id: str
    config_path: str
    config_resolved: dict[str, Any]
    config_hash: str
    mode: str
    software_version: str
    control_rate_hz: float
    joint_names: tuple[str, ...]
    camera_names: tuple[str, ...]
    task: str
    target: TargetInfo | None
    t_start_wall: float
    t_start_mono: float
    expert_override: dict[str, Any] | None = None  # fields run outside their sensible range, and why


class SourceExhausted(Exception):
    """Raised by ``Hardware.read_state`` of a finite source (a replayed recording) that has no
    more data: the session ends cleanly instead of failing."""


# ---------------------------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class Hardware(Protocol):
    """A robot. Lifecycle: connect (read-only) -> [enable -> apply*] -> close.

    ``connect`` must not make torque or move anything: it is all ``dry_run`` ever calls besides
    ``read_state`` / ``safe_stop`` / ``close``. ``enable`` is called only in ``apply_actions``
    and only after the inference target answered with a valid first chunk.

    Optional capabilities are the small protocols below (``StepAwareHardware``,
    ``ChunkAwareHardware``, ``CameraProvider``, ``HomingHardware``); the runner checks them once,
    with ``isinstance``, when the session is built (:func:`hardware_capabilities`).
    """

    layout: JointLayout
    can_apply: bool

    def connect(self) -> None: ...
    def enable(self) -> None: ...
    def read_state(self) -> StateSample: ...
    def apply(self, action: np.ndarray, step: int) -> None: ...
    def safe_stop(self, reason: str) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class Camera(Protocol):
    """A frame source. ``latest`` never blocks and returns ``None`` until a first frame exists."""

    name: str

    def start(self) -> None: ...
    def latest(self) -> Frame | None: ...
    def stop(self) -> None: ...


@runtime_checkable
class Target(Protocol):
    """Where inference runs. ``infer`` blocks; the runner calls it off the control thread."""

    def connect(self) -> TargetInfo: ...
    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]: ...
    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Optional capabilities (checked once, with isinstance, never probed with getattr)
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class StepAwareHardware(Protocol):
    """``read_state(step=N)`` receives the control step (``None`` for reads outside the loop).
    Declared with ``accepts_step = True``."""

    accepts_step: bool

    def read_state(self, step: int | None = None) -> StateSample: ...


@runtime_checkable
class ChunkAwareHardware(Protocol):
    """``apply`` receives which chunk the action comes from and when it should take effect.
    Declared with ``accepts_chunk_context = True``."""

    accepts_chunk_context: bool

    def apply(
        self, action: np.ndarray, step: int, chunk_id: int | None = None, t_target: float | None = None
    ) -> None: ...


@runtime_checkable
class CameraProvider(Protocol):
    """A robot that brings its own cameras (valid after ``connect``). The robot owns them: it
    starts them in ``connect`` and stops them in ``close``; the runner only reads ``latest``."""

    def cameras(self) -> dict[str, Camera]: ...


@runtime_checkable
class HomingHardware(Protocol):
    """``go_home()`` drives to the home pose; used for ``safety.home_on_stop`` (apply_actions only)."""

    def go_home(self) -> None: ...


@runtime_checkable
class CameraHealth(Protocol):
    """A camera that can describe its source (reported in the result's ``cameras.<name>.health``)."""

    def health(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class HardwareCapabilities:
    """What an optional-capability check found, decided once per session."""

    step_aware: bool
    chunk_aware: bool


def hardware_capabilities(hardware: Hardware) -> HardwareCapabilities:
    step_aware = isinstance(hardware, StepAwareHardware) and hardware.accepts_step is True
    chunk_aware = isinstance(hardware, ChunkAwareHardware) and hardware.accepts_chunk_context is True
    return HardwareCapabilities(step_aware, chunk_aware)


@runtime_checkable
class Recorder(Protocol):
    """One recording format. All methods run on the recorder's own writer thread."""

    name: str

    def open(self, meta: SessionMeta) -> None: ...
    def write_step(self, rec: StepRecord) -> None: ...
    def write_chunk(self, chunk: ActionChunk) -> None: ...
    def write_event(self, event: SessionEvent) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...

"""What a reader hands to replay: one recorded episode, independent of the file format.

Readers fill these from any format; everything after (observation rebuild, metrics, the replay
hardware) only sees these types. Images load lazily so a long session never sits in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reflex.errors import EXIT_CONFIG, ReflexError


class RecordingError(ReflexError):
    """A recording cannot be read: missing, corrupt, truncated or in an unknown format."""

    exit_code = EXIT_CONFIG

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


@dataclass
class RecordedFrame:
    """One camera image as recorded; ``load()`` decodes it (RGB HxWx3 uint8)."""

    camera: str
    seq: int
    t_capture: float
    step: int  # first control step that saw this frame
    loader: Callable[[], np.ndarray] | None  # None: the recording kept no pixels

    def load(self) -> np.ndarray:
        if self.loader is None:
            raise RecordingError(
                f"step {self.step}", f"camera '{self.camera}' frame {self.seq} has no image (recorded with images off)"
            )
        return self.loader()


@dataclass
class RecordedStep:
    step: int
    t_tick: float
    state: np.ndarray
    t_state: float
    action: np.ndarray | None
    applied: bool
    chunk_id: int | None
    chunk_index: float | None
    task: str
    frames: dict[str, RecordedFrame] = field(default_factory=dict)  # new at this step


@dataclass
class RecordedChunk:
    """A whole chunk the target returned, and the control step whose observation produced it."""

    chunk_id: int
    obs_step: int
    t_origin: float
    dt: float
    t_requested: float
    t_received: float
    actions: np.ndarray  # (horizon, action_dim)


@dataclass
class EpisodeMeta:
    session_id: str
    joint_names: tuple[str, ...]
    camera_names: tuple[str, ...]
    task: str
    control_rate_hz: float
    mode: str = ""
    target: dict[str, Any] | None = None  # TargetInfo as recorded (model_hash, seed, ...)
    config_resolved: dict[str, Any] = field(default_factory=dict)
    t_start_mono: float | None = None
    config_path: str = ""

    @property
    def seed(self) -> int | None:
        seed = (self.target or {}).get("seed")
        return int(seed) if isinstance(seed, int) else None

    @property
    def model_hash(self) -> str | None:
        value = (self.target or {}).get("model_hash")
        return value if isinstance(value, str) else None


@dataclass
class Episode:
    source: Path
    format: str
    index: int
    meta: EpisodeMeta
    steps: list[RecordedStep]
    chunks: list[RecordedChunk]
    complete: bool = True  # False: the session died before the recorder closed (``--partial``)
    notes: list[str] = field(default_factory=list)
    # Why a rebuilt observation is not bit-identical to what the policy saw; empty for lossless
    # formats. Image losses only matter to a policy that is fed images.
    lossy_images: list[str] = field(default_factory=list)
    lossy_state: list[str] = field(default_factory=list)
    # A dataset not recorded by Reflex (a demonstration): the demonstrated action of every step,
    # (len(steps), dim); replay compares the policy's chunk with the actions that follow a frame.
    demonstration: np.ndarray | None = None
    foreign: bool = False  # read from a dataset Reflex did not record (no chunks, no session config)

    @property
    def label(self) -> str:
        return f"{self.source}#{self.index}" if self.index else str(self.source)

    def duration_s(self) -> float:
        if len(self.steps) < 2:
            return len(self.steps) / self.meta.control_rate_hz
        return self.steps[-1].t_tick - self.steps[0].t_tick + 1.0 / self.meta.control_rate_hz

    def step_index(self) -> dict[int, int]:
        """Control step number -> position in ``steps``."""
        return {s.step: i for i, s in enumerate(self.steps)}

"""Step and chunk records from the plain-JSON dicts every Reflex recorder shares (``serialize.py``).

The JSONL lines, the MCAP ``/reflex/step`` and ``/policy/chunk`` messages and the LeRobot
``meta/reflex/chunks.jsonl`` sidecar all carry these dicts; one strict parser serves them all.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from reflex.replay.episode import EpisodeMeta, RecordedChunk, RecordedFrame, RecordedStep, RecordingError

FrameLoaderFactory = Any  # (camera, seq, step, path) -> loader | None


class RecordParser:
    """Validates record dicts; ``where`` names the file/line/message for error messages."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.where = ""

    def meta(self, obj: dict[str, Any]) -> EpisodeMeta:
        names = obj.get("joint_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RecordingError(self.where, "joint_names must be a non-empty list of names")
        self.dim = len(names)
        rate = obj.get("control_rate_hz")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
            raise RecordingError(self.where, f"control_rate_hz must be > 0, got {rate!r}")
        target = obj.get("target")
        config = obj.get("config_resolved")
        return EpisodeMeta(
            session_id=str(obj.get("session_id", "")),
            joint_names=tuple(names),
            camera_names=tuple(obj.get("camera_names") or ()),
            task=str(obj.get("task", "")),
            control_rate_hz=float(rate),
            mode=str(obj.get("mode", "")),
            target=target if isinstance(target, dict) else None,
            config_resolved=config if isinstance(config, dict) else {},
            t_start_mono=obj.get("t_start_mono"),
            config_path=str(obj.get("config_path", "")),
        )

    def step(self, obj: dict[str, Any], frame_loader: FrameLoaderFactory) -> RecordedStep:
        step = self.int(obj, "step")
        action = obj.get("action")
        frames_obj = obj.get("frames") or {}
        if not isinstance(frames_obj, dict):
            raise RecordingError(self.where, "step.frames must be an object")
        frames = {}
        for name, f in frames_obj.items():
            if not isinstance(f, dict):
                raise RecordingError(self.where, f"step.frames.{name} must be an object")
            seq = self.int(f, "seq")
            loader = frame_loader(name, seq, step, f.get("path"))
            frames[name] = RecordedFrame(name, seq, self.float(f, "t_capture"), step, loader)
        chunk_index = obj.get("chunk_index")
        chunk_id = obj.get("chunk_id")
        return RecordedStep(
            step=step,
            t_tick=self.float(obj, "t_tick"),
            state=self.vector(obj.get("state"), "step.state"),
            t_state=self.float(obj, "t_state"),
            action=None if action is None else self.vector(action, "step.action"),
            applied=bool(obj.get("applied", False)),
            chunk_id=None if chunk_id is None else self.int(obj, "chunk_id"),
            chunk_index=None if chunk_index is None else self.float(obj, "chunk_index"),
            task=str(obj.get("task", "")),
            frames=frames,
        )

    def chunk(self, obj: dict[str, Any]) -> RecordedChunk:
        try:
            array = np.asarray(obj.get("actions"), dtype=np.float64)
        except (TypeError, ValueError):
            raise RecordingError(self.where, "chunk.actions must be a list of equal-length rows") from None
        if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] != self.dim:
            raise RecordingError(
                self.where, f"chunk.actions has shape {array.shape}, expected (horizon, {self.dim})"
            )
        return RecordedChunk(
            chunk_id=self.int(obj, "chunk_id"),
            obs_step=self.int(obj, "obs_step"),
            t_origin=self.float(obj, "t_origin"),
            dt=self.float(obj, "dt"),
            t_requested=self.float(obj, "t_requested"),
            t_received=self.float(obj, "t_received"),
            actions=array,
        )

    def int(self, obj: dict[str, Any], key: str) -> int:
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordingError(self.where, f"'{key}' must be an integer, got {value!r}")
        return value

    def float(self, obj: dict[str, Any], key: str) -> float:
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RecordingError(self.where, f"'{key}' must be a finite number, got {value!r}")
        return float(value)

    def vector(self, value: Any, what: str) -> np.ndarray:
        if not isinstance(value, list) or len(value) != self.dim:
            got = len(value) if isinstance(value, list) else type(value).__name__
            raise RecordingError(self.where, f"{what} must have {self.dim} numbers (one per joint), got {got}")
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise RecordingError(self.where, f"{what} must hold numbers") from None
        if array.shape != (self.dim,):
            raise RecordingError(self.where, f"{what} must hold {self.dim} numbers")
        return array


def note_gaps(steps: list[RecordedStep], notes: list[str]) -> None:
    numbers = [s.step for s in steps]
    if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        notes.append(
            f"{len(missing)} step(s) missing from the recording (dropped by the recorder?), first {missing[:5]}"
        )


def decode_image(data: bytes, where: str) -> np.ndarray:
    """JPEG/PNG bytes -> RGB HxWx3 uint8."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise RecordingError(where, f"image is corrupt: {exc}") from None


def locate_file(path: Path, fmt: str) -> Path | None:
    """A single-file format: the file itself, or its main file in a session or format directory
    (names from the format registry)."""
    from reflex.recording.formats import spec

    file_name, format_dir = spec(fmt).main_file or "", spec(fmt).directory
    if path.is_file():
        return path if path.suffix == Path(file_name).suffix else None
    for candidate in (path / file_name, path / format_dir / file_name):
        if candidate.is_file():
            return candidate
    return None

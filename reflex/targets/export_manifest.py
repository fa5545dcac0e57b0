"""``reflex_config.json``: what an export directory declares about its model (docs/export-format.md).

The local target, ``reflex serve``, ``reflex replay`` and ``reflex validate`` all read exports
through this model, so a policy's inputs, outputs, chunking, normalisation and action semantics
are checked before anything moves. ``schemas/export/reflex_config.schema.json`` is generated from
it (``reflex schema``).

Input roles are the extension point: a new kind of model input adds its name to ``INPUT_ROLES``,
its fields (if any) to :class:`InputSpec`, and its feeding rule to ``reflex/policy/onnx_policy.py``.
An export naming a role this Reflex does not know is refused, never half-fed.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from reflex.config.base import StrictModel

MANIFEST_NAME = "reflex_config.json"
BUILTIN_PREFIX = "builtin:"
FORMAT_VERSION = 2
MAX_MANIFEST_BYTES = 8 << 20  # a manifest is metadata: stats and fixtures' figures, never weights

# What feeds each model input. See docs/export-format.md#inputs.
InputRole = Literal["state", "image", "noise", "text", "text_mask", "prefix", "prefix_frozen", "prefix_weights"]
INPUT_ROLES: tuple[str, ...] = InputRole.__args__  # type: ignore[attr-defined]


class InputSpec(StrictModel):
    """One ONNX model input and where its value comes from."""

    name: str = Field(description="ONNX input name.")
    role: InputRole = Field(
        description="state: the joint state (normalised); image: one camera, NCHW; noise: seeded "
        "standard normal; text: token ids of the session's task; text_mask: their attention mask; "
        "prefix: the actions that will still run while this inference is in flight (normalised, "
        "(B, chunk_length, action_dim)); prefix_frozen: how many of them are frozen (int64 (B,)); "
        "prefix_weights: RTC's soft mask over them ((B, chunk_length)). See docs/execution.md."
    )
    camera: str | None = Field(None, description="image: the camera feeding this input.")
    height: int | None = Field(None, gt=0, description="image: pixel rows the model takes.")
    width: int | None = Field(None, gt=0, description="image: pixel columns the model takes.")
    dtype: Literal["float32", "uint8", "int64"] = Field(
        "float32",
        description="image: float32 scaled to [0, 1] (then normalised if stats are given) or raw "
        "uint8. text/text_mask: int64. Others: float32.",
    )
    shape: list[int] | None = Field(
        None,
        description="noise: the per-sample shape (without the batch axis); default "
        "[chunk_length, action_dim].",
    )
    history: int = Field(
        1,
        ge=1,
        le=64,
        description="state/image: observation steps the graph takes on an axis after the batch "
        "(e.g. Diffusion Policy's n_obs_steps). 1 means no such axis. Reflex fills it with the "
        "current observation repeated, as LeRobot does on a policy's first call.",
    )

    @model_validator(mode="after")
    def _role_fields(self) -> InputSpec:
        if self.role == "image" and (self.camera is None or self.height is None or self.width is None):
            raise ValueError(f"image input '{self.name}' needs camera, height and width")
        if self.role != "image" and self.camera is not None:
            raise ValueError(f"input '{self.name}': only image inputs name a camera")
        if self.role in ("text", "text_mask") and self.dtype != "int64":
            raise ValueError(f"{self.role} input '{self.name}' must have dtype int64")
        if self.role == "prefix_frozen" and self.dtype != "int64":
            raise ValueError(f"prefix_frozen input '{self.name}' must have dtype int64")
        if self.role in ("state", "noise", "prefix", "prefix_weights") and self.dtype != "float32":
            raise ValueError(f"{self.role} input '{self.name}' must have dtype float32")
        if self.shape is not None and (self.role != "noise" or any(d <= 0 for d in self.shape)):
            raise ValueError(f"input '{self.name}': shape is for noise inputs, with positive sizes")
        if self.history > 1 and self.role not in ("state", "image"):
            raise ValueError(f"input '{self.name}': history is for state and image inputs")
        return self


class Stats(StrictModel):
    """Normalisation of one vector, as the model was trained (LeRobot's formulas).

    mean_std: ``n = (x - mean) / (std + eps)``, inverse ``x = n * std + mean``.
    min_max: ``n = 2 (x - min) / (max - min) - 1`` (``eps`` where ``max == min``), inverse
    ``x = (n + 1) / 2 (max - min) + min``.
    """

    mode: Literal["mean_std", "min_max"] = "mean_std"
    mean: list[float] | None = None
    std: list[float] | None = None
    min: list[float] | None = None
    max: list[float] | None = None
    eps: float = Field(0.0, ge=0, description="Added to std (mean_std) or used for a zero range (min_max).")

    @model_validator(mode="after")
    def _complete(self) -> Stats:
        a, b = ("mean", "std") if self.mode == "mean_std" else ("min", "max")
        first, second = getattr(self, a), getattr(self, b)
        if first is None or second is None:
            raise ValueError(f"mode {self.mode} needs '{a}' and '{b}'")
        if len(first) != len(second):
            raise ValueError(f"'{a}' and '{b}' must have the same length")
        if not all(np.isfinite(first)) or not all(np.isfinite(second)):
            raise ValueError("statistics must be finite")
        if self.mode == "mean_std" and any(s + self.eps <= 0 for s in second):
            raise ValueError("std entries (+ eps) must be > 0")
        if self.mode == "min_max" and any(hi < lo for lo, hi in zip(first, second, strict=True)):
            raise ValueError("every max must be >= its min")
        return self

    @property
    def size(self) -> int:
        values = self.mean if self.mode == "mean_std" else self.min
        assert values is not None
        return len(values)

    def affine(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(offset, scale_in, scale_out)``: normalise ``(x - offset) / scale_in``; unnormalise
        ``n * scale_out + offset``. float64."""
        if self.mode == "mean_std":
            mean, std = np.asarray(self.mean, np.float64), np.asarray(self.std, np.float64)
            return mean, std + self.eps, std
        lo, hi = np.asarray(self.min, np.float64), np.asarray(self.max, np.float64)
        span = np.where(hi - lo == 0, self.eps, hi - lo)
        return lo + span / 2, span / 2, span / 2


class Normalization(StrictModel):
    """Applied by Reflex outside the graph: state and images in, actions out."""

    state: Stats | None = None
    action: Stats | None = None
    images: dict[str, Stats] = Field(
        default_factory=dict, description="Camera -> per-channel (3) stats on [0, 1] float pixels."
    )


class ActionSemantics(StrictModel):
    """What one action number means, so a policy never drives a robot that reads it otherwise."""

    kind: Literal["absolute", "delta"] = Field(
        "absolute",
        description="absolute: joint position targets. delta: offsets from the state the chunk "
        "was inferred from (Reflex runs absolute-position hardware, so it refuses these).",
    )
    units: list[str] | None = Field(
        None,
        description="Per action, e.g. rad, m, normalized. Checked against the hardware's units "
        "when both declare them. null: not declared.",
    )
    gripper_ranges: dict[str, list[float]] = Field(
        default_factory=dict,
        description="Action name -> [closed, open] as the policy outputs it. Checked against the "
        "hardware's limits for that joint.",
    )

    @model_validator(mode="after")
    def _ranges(self) -> ActionSemantics:
        for name, pair in self.gripper_ranges.items():
            if len(pair) != 2 or not all(np.isfinite(pair)) or pair[0] == pair[1]:
                raise ValueError(f"gripper_ranges.{name} must be two different finite numbers")
        return self


class TokenizerSpec(StrictModel):
    """The tokenizer of a ``text`` input, shipped in the export (Hugging Face ``tokenizers`` JSON)."""

    file: str = Field("tokenizer.json", description="Path inside the export directory.")
    max_length: int = Field(gt=0, le=4096, description="Ids are padded / truncated to this length.")
    pad_id: int = Field(0, ge=0, description="Id used for padding (attention mask 0).")
    padding_side: Literal["right", "left"] = "right"


class Provenance(StrictModel):
    """Where the export came from; recorded with every session that runs it."""

    source_kind: Literal["lerobot", "demo", "hand"] = "hand"
    source: str = Field("", description="What was exported (a path, 'demo', ...).")
    policy_type: str | None = Field(None, description="e.g. act, diffusion.")
    checkpoint_sha256: str | None = Field(
        None, description="SHA-256 over the checkpoint's files (sorted names and contents)."
    )
    exporter: str = Field("", description="Tool and version that wrote the export.")
    opset: int | None = Field(None, description="ONNX opset of model.onnx.")
    versions: dict[str, str] = Field(default_factory=dict, description="Library versions used to export.")


class FixtureResult(StrictModel):
    fixture: int
    max_abs: float
    mean_abs: float
    cosine: float


class Parity(StrictModel):
    """The export-time parity gate: ONNX Runtime vs the source framework on stored fixtures."""

    threshold: float = Field(gt=0, description="Largest max_abs (robot units) accepted.")
    fixtures_file: str = Field("fixtures/fixtures.npz", description="Inputs and reference chunks.")
    reference: str = Field("", description="What produced the reference chunks.")
    providers: list[str] = Field(default_factory=list, description="ONNX Runtime providers measured.")
    max_abs: float = Field(description="Worst max_abs over the fixtures.")
    results: list[FixtureResult] = Field(default_factory=list)


class ExportManifest(StrictModel):
    format_version: Literal[1, 2] = Field(
        2, description="2 is current; 1 is 2 without its optional blocks."
    )
    name: str
    description: str = ""
    model_file: str = "model.onnx"
    state_dim: int = Field(gt=0)
    action_dim: int = Field(gt=0)
    chunk_length: int = Field(gt=0, description="Actions per chunk.")
    action_dt_s: float = Field(gt=0, description="Seconds between consecutive chunk actions.")
    state_names: list[str] = Field(description="One per state entry, or [] if not declared.")
    action_names: list[str] = Field(description="One per action entry, or [] if not declared.")
    inputs: list[InputSpec]
    output: str = Field("actions", description="ONNX output holding (batch, chunk, action_dim).")
    normalization: Normalization = Normalization()
    action_semantics: ActionSemantics = ActionSemantics()
    tokenizer: TokenizerSpec | None = None
    seed: int | None = Field(None, description="Seed of the noise inputs, if the model has any.")
    provenance: Provenance | None = None
    parity: Parity | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ExportManifest:
        files = [("model_file", self.model_file)]
        if self.tokenizer:
            files.append(("tokenizer.file", self.tokenizer.file))
        if self.parity:
            files.append(("parity.fixtures_file", self.parity.fixtures_file))
        for field, rel in files:
            if Path(rel).is_absolute() or ".." in Path(rel).parts or not rel:
                raise ValueError(f"{field} must be a relative path inside the export, got {rel!r}")
        if self.state_names and len(self.state_names) != self.state_dim:
            raise ValueError("state_names must have state_dim entries (or be [])")
        if self.action_names and len(self.action_names) != self.action_dim:
            raise ValueError("action_names must have action_dim entries (or be [])")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError("input names must be unique")
        roles = [i.role for i in self.inputs]
        if roles.count("state") != 1:
            raise ValueError("exactly one input must have role 'state'")
        for role in ("text", "text_mask", "prefix", "prefix_frozen", "prefix_weights"):
            if roles.count(role) > 1:
                raise ValueError(f"at most one input may have role '{role}'")
        if ("prefix_frozen" in roles or "prefix_weights" in roles) and "prefix" not in roles:
            raise ValueError("prefix_frozen and prefix_weights inputs need a prefix input")
        if ("text" in roles or "text_mask" in roles) and self.tokenizer is None:
            raise ValueError("a text input needs a 'tokenizer' block")
        if "text_mask" in roles and "text" not in roles:
            raise ValueError("a text_mask input needs a text input")
        cameras = [i.camera for i in self.inputs if i.role == "image"]
        if len(set(cameras)) != len(cameras):
            raise ValueError("each camera may feed one image input")
        norm = self.normalization
        if norm.state and norm.state.size != self.state_dim:
            raise ValueError("normalization.state must have state_dim entries")
        if norm.action and norm.action.size != self.action_dim:
            raise ValueError("normalization.action must have action_dim entries")
        for camera, stats in norm.images.items():
            if camera not in cameras:
                raise ValueError(f"normalization.images.{camera}: no image input reads that camera")
            if stats.size != 3:
                raise ValueError(f"normalization.images.{camera} must have 3 (RGB) entries")
        sem = self.action_semantics
        if sem.units is not None and len(sem.units) != self.action_dim:
            raise ValueError("action_semantics.units must have action_dim entries")
        if sem.gripper_ranges and not self.action_names:
            raise ValueError("action_semantics.gripper_ranges needs action_names")
        unknown = [g for g in sem.gripper_ranges if g not in self.action_names]
        if unknown:
            raise ValueError(f"action_semantics.gripper_ranges names unknown action(s) {unknown}")
        return self

    def image_inputs(self) -> list[InputSpec]:
        return [i for i in self.inputs if i.role == "image"]

    def noise_shape(self, spec: InputSpec) -> tuple[int, ...]:
        return tuple(spec.shape) if spec.shape is not None else (self.chunk_length, self.action_dim)

    def has_text(self) -> bool:
        return any(i.role == "text" for i in self.inputs)

    def has_prefix(self) -> bool:
        """The policy takes RTC prefix conditioning (docs/execution.md#prefix-conditioning-rtc)."""
        return any(i.role.startswith("prefix") for i in self.inputs)


def resolve_export_dir(value: str, base: Path) -> Path:
    """``builtin:demo`` names an export shipped in the package; anything else is a path."""
    if value.startswith(BUILTIN_PREFIX):
        name = value[len(BUILTIN_PREFIX) :]
        exports = Path(str(resources.files("reflex.demo"))) / "exports"
        root = exports / name
        if not name or not root.is_dir():
            known = sorted(p.name for p in exports.iterdir() if (p / MANIFEST_NAME).is_file())
            raise FileNotFoundError(
                f"no built-in export named '{name}'; built-ins: {', '.join(BUILTIN_PREFIX + k for k in known)}"
            )
        return root
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def load_manifest(export_dir: Path) -> ExportManifest:
    path = export_dir / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (an export needs {MANIFEST_NAME})")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes")
    return ExportManifest.model_validate(json.loads(path.read_text()))


def write_manifest(export_dir: Path, manifest: ExportManifest) -> Path:
    """Deterministic JSON (defaults included), so a rebuilt export is byte-identical."""
    path = export_dir / MANIFEST_NAME
    path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def render_schemas() -> dict[str, str]:
    """``schemas/export/reflex_config.schema.json``."""
    from reflex.schemas import dumps

    schema: dict[str, Any] = ExportManifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Reflex export manifest (reflex_config.json)"
    return {"export/reflex_config.schema.json": dumps(schema)}

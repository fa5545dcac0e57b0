"""``reflex_config.json``: what an export directory declares about its model.

The local target, ``reflex serve`` and ``reflex replay`` all read exports through this model, so
a policy's inputs, outputs, chunking and normalisation are checked before anything moves.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from reflex.config.base import StrictModel

MANIFEST_NAME = "reflex_config.json"
BUILTIN_PREFIX = "builtin:"


class InputSpec(StrictModel):
    """One model input and where its value comes from."""

    name: str = Field(description="ONNX input name.")
    role: Literal["state", "image", "noise"]
    camera: str | None = Field(None, description="Camera name feeding an image input.")
    height: int | None = Field(None, gt=0)
    width: int | None = Field(None, gt=0)
    dtype: Literal["float32", "uint8"] = "float32"

    @model_validator(mode="after")
    def _image_fields(self) -> InputSpec:
        if self.role == "image" and (self.camera is None or self.height is None or self.width is None):
            raise ValueError(f"image input '{self.name}' needs camera, height and width")
        return self


class Stats(StrictModel):
    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _positive(self) -> Stats:
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std must have the same length")
        if any(s <= 0 for s in self.std):
            raise ValueError("std entries must be > 0")
        return self


class Normalization(StrictModel):
    state: Stats | None = None
    action: Stats | None = None


class ExportManifest(StrictModel):
    format_version: Literal[1] = 1
    name: str
    description: str = ""
    model_file: str = "model.onnx"
    state_dim: int = Field(gt=0)
    action_dim: int = Field(gt=0)
    chunk_length: int = Field(gt=0)
    action_dt_s: float = Field(gt=0, description="Seconds between consecutive chunk actions.")
    state_names: list[str]
    action_names: list[str]
    inputs: list[InputSpec]
    output: str = Field("actions", description="ONNX output holding (batch, chunk, action_dim).")
    normalization: Normalization = Normalization()
    seed: int | None = Field(None, description="Seed of the noise input, if the model has one.")

    @model_validator(mode="after")
    def _consistent(self) -> ExportManifest:
        if len(self.state_names) != self.state_dim:
            raise ValueError("state_names must have state_dim entries")
        if len(self.action_names) != self.action_dim:
            raise ValueError("action_names must have action_dim entries")
        roles = [i.role for i in self.inputs]
        if roles.count("state") != 1:
            raise ValueError("exactly one input must have role 'state'")
        norm = self.normalization
        if norm.state and len(norm.state.mean) != self.state_dim:
            raise ValueError("normalization.state must have state_dim entries")
        if norm.action and len(norm.action.mean) != self.action_dim:
            raise ValueError("normalization.action must have action_dim entries")
        return self

    def image_inputs(self) -> list[InputSpec]:
        return [i for i in self.inputs if i.role == "image"]


def resolve_export_dir(value: str, base: Path) -> Path:
    """``builtin:demo`` names an export shipped in the package; anything else is a path."""
    if value.startswith(BUILTIN_PREFIX):
        name = value[len(BUILTIN_PREFIX) :]
        root = Path(str(resources.files("reflex.demo"))) / "exports" / name
        if not root.is_dir():
            raise FileNotFoundError(f"no built-in export named '{name}'")
        return root
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def load_manifest(export_dir: Path) -> ExportManifest:
    path = export_dir / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (an export needs {MANIFEST_NAME})")
    return ExportManifest.model_validate(json.loads(path.read_text()))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Config of the in-process ONNX target."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from reflex.config.base import BuildContext
from reflex.ports import Target
from reflex.targets.base import TargetSpec


class LocalTargetSpec(TargetSpec):
    """Runs ``model.onnx`` of an export directory with ONNX Runtime (TensorRT -> CUDA -> CPU)."""

    kind: Literal["local"] = "local"
    export: str = Field(
        description="Export directory (relative to this file) or 'builtin:demo' for the demo policy."
    )
    providers: list[str] | None = Field(
        None, description="Execution providers to use, best first (e.g. [cuda, cpu]). Default: auto."
    )
    strict_providers: bool = Field(
        False, description="Fail instead of dropping a requested provider that is not installed."
    )
    seed: int | None = Field(None, description="Seed of the policy noise; default: the export's.")
    intra_op_threads: int = Field(1, ge=1, description="ONNX Runtime threads for one inference.")

    @field_validator("export")
    @classmethod
    def _known_builtin(cls, value: str) -> str:
        """A wrong ``builtin:NAME`` is a config error that lists the built-ins, not a crash at connect."""
        from reflex.targets.export_manifest import BUILTIN_PREFIX, resolve_export_dir

        if value.startswith(BUILTIN_PREFIX):
            try:
                resolve_export_dir(value, Path("."))
            except FileNotFoundError as exc:
                raise ValueError(str(exc)) from None
        return value

    def build(self, ctx: BuildContext) -> Target:
        from reflex.targets.export_manifest import resolve_export_dir
        from reflex.targets.local.target import LocalTarget

        return LocalTarget(self, resolve_export_dir(self.export, ctx.config_dir))

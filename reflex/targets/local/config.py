"""Config of the in-process ONNX target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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

    def build(self, ctx: BuildContext) -> Target:
        from reflex.targets.export_manifest import resolve_export_dir
        from reflex.targets.local.target import LocalTarget

        return LocalTarget(self, resolve_export_dir(self.export, ctx.config_dir))

"""What the server hosts: a policy object and the facts about it that clients need."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class PolicyLike(Protocol):
    """The part of :class:`reflex.policy.onnx_policy.OnnxPolicy` the server uses."""

    def predict(
        self, state: np.ndarray, images: dict[str, np.ndarray], step: int, task: str = ""
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelInfo:
    """Shapes and identity of the hosted model, sent in /health and every handshake."""

    name: str
    state_dim: int
    action_dim: int
    chunk_length: int
    action_dt_s: float
    image_inputs: dict[str, tuple[int, int]]  # camera -> (height, width)
    state_names: tuple[str, ...] = ()
    action_names: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    model_hash: str | None = None
    seed: int | None = None
    export_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "chunk_length": self.chunk_length,
            "action_dt_s": self.action_dt_s,
            "image_inputs": {k: [h, w] for k, (h, w) in self.image_inputs.items()},
            "state_names": list(self.state_names),
            "action_names": list(self.action_names),
            "providers": list(self.providers),
            "model_hash": self.model_hash,
            "seed": self.seed,
            "export_dir": self.export_dir,
        }


def load_onnx_export(
    export: str,
    providers: list[str] | None = None,
    strict_providers: bool = False,
    seed: int | None = None,
    intra_op_threads: int = 1,
    base: Path | None = None,
) -> tuple[PolicyLike, ModelInfo]:
    """Load an export directory (or ``builtin:NAME``) with :class:`OnnxPolicy`."""
    from reflex.policy.onnx_policy import OnnxPolicy
    from reflex.targets.export_manifest import resolve_export_dir

    export_dir = resolve_export_dir(export, base or Path.cwd())
    policy = OnnxPolicy(
        export_dir,
        providers=providers,
        strict_providers=strict_providers,
        seed=seed,
        intra_op_threads=intra_op_threads,
    )
    m = policy.manifest
    info = ModelInfo(
        name=m.name,
        state_dim=m.state_dim,
        action_dim=m.action_dim,
        chunk_length=m.chunk_length,
        action_dt_s=m.action_dt_s,
        image_inputs={
            i.camera: (int(i.height), int(i.width))
            for i in m.image_inputs()
            if i.camera and i.height and i.width
        },
        state_names=tuple(m.state_names),
        action_names=tuple(m.action_names),
        providers=tuple(policy.providers),
        model_hash=policy.model_hash,
        seed=policy.seed,
        export_dir=str(export_dir),
    )
    return policy, info

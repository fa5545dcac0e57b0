"""The local target: an :class:`OnnxPolicy` behind the Target port."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from reflex.policy.onnx_policy import OnnxPolicy
from reflex.ports import Observation, TargetInfo
from reflex.targets.local.config import LocalTargetSpec


class LocalTarget:
    def __init__(self, spec: LocalTargetSpec, export_dir: Path) -> None:
        self.spec = spec
        self.export_dir = export_dir
        self.policy: OnnxPolicy | None = None

    def connect(self) -> TargetInfo:
        self.policy = OnnxPolicy(
            self.export_dir,
            providers=self.spec.providers,
            strict_providers=self.spec.strict_providers,
            seed=self.spec.seed,
            intra_op_threads=self.spec.intra_op_threads,
        )
        m = self.policy.manifest
        return TargetInfo(
            kind="local",
            action_dim=m.action_dim,
            state_dim=m.state_dim,
            chunk_length=m.chunk_length,
            action_dt=m.action_dt_s,
            image_keys=tuple(i.camera for i in m.image_inputs() if i.camera),
            action_names=tuple(m.action_names),
            state_names=tuple(m.state_names),
            action_semantics=m.action_semantics.model_dump(mode="json"),
            providers=self.policy.providers,
            model_hash=self.policy.model_hash,
            seed=self.policy.seed,
            accepts_prefix=m.has_prefix(),
            # a built-in export is named as configured: its install path says nothing portable
            details={"export": self.spec.export if self.spec.export.startswith("builtin:") else str(self.export_dir),
                     "name": m.name},
        )

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        assert self.policy is not None, "infer before connect"
        t0 = time.perf_counter()
        images = {name: frame.image for name, frame in obs.images.items()}
        chunk = self.policy.predict(obs.state.position, images, obs.step, obs.task, prefix=obs.prefix)
        return chunk, {"model_ms": (time.perf_counter() - t0) * 1e3}

    def close(self) -> None:
        self.policy = None

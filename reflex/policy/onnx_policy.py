"""An exported policy run with ONNX Runtime: observation arrays in, un-normalised chunk out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reflex.policy.providers import choose_providers
from reflex.targets.export_manifest import ExportManifest, file_sha256, load_manifest


class PolicyInputError(ValueError):
    """An observation does not fit what the export declares."""


class OnnxPolicy:
    """Loads ``model.onnx`` once; ``predict`` is thread-compatible (one call at a time)."""

    def __init__(
        self,
        export_dir: Path,
        providers: list[str] | None = None,
        strict_providers: bool = False,
        seed: int | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.export_dir = export_dir
        self.manifest: ExportManifest = load_manifest(export_dir)
        model_path = export_dir / self.manifest.model_file
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} not found (declared by reflex_config.json)")
        self.model_hash = file_sha256(model_path)
        chosen = choose_providers(ort.get_available_providers(), providers, strict_providers)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), options, providers=chosen)
        self.providers = tuple(self.session.get_providers())
        self.seed = seed if seed is not None else self.manifest.seed
        self._check_graph()
        norm = self.manifest.normalization
        self._state_norm = (
            (np.asarray(norm.state.mean), np.asarray(norm.state.std)) if norm.state else None
        )
        self._action_norm = (
            (np.asarray(norm.action.mean), np.asarray(norm.action.std)) if norm.action else None
        )

    # -- public ---------------------------------------------------------------------------
    def predict(self, state: np.ndarray, images: dict[str, np.ndarray], step: int) -> np.ndarray:
        """One chunk, shape (chunk_length, action_dim), float64, in robot units."""
        return self.predict_batch(state[None], {k: v[None] for k, v in images.items()}, [step])[0]

    def predict_batch(
        self, states: np.ndarray, images: dict[str, np.ndarray], steps: list[int]
    ) -> np.ndarray:
        """Chunks for a batch: states (B, state_dim), images name -> (B, H, W, 3) uint8 RGB."""
        m = self.manifest
        states = np.asarray(states, dtype=np.float64)
        if states.ndim != 2 or states.shape[1] != m.state_dim:
            raise PolicyInputError(f"state has shape {states.shape[1:]}, expected ({m.state_dim},)")
        if not np.all(np.isfinite(states)):
            raise PolicyInputError("state contains NaN or Inf")
        feeds: dict[str, np.ndarray] = {}
        for spec in m.inputs:
            if spec.role == "state":
                s = states if self._state_norm is None else (states - self._state_norm[0]) / self._state_norm[1]
                feeds[spec.name] = s.astype(np.float32)
            elif spec.role == "image":
                assert spec.camera is not None
                feeds[spec.name] = self._image_feed(spec.camera, images, spec.height, spec.width, spec.dtype)
            else:
                feeds[spec.name] = self.noise(steps)
        (out,) = self.session.run([m.output], feeds)
        chunk = np.asarray(out, dtype=np.float64)
        if self._action_norm is not None:
            chunk = chunk * self._action_norm[1] + self._action_norm[0]
        return chunk

    def noise(self, steps: list[int]) -> np.ndarray:
        """Noise keyed on (seed, observation step): a replay of the same steps sees the same noise."""
        m = self.manifest
        seed = 0 if self.seed is None else self.seed
        rows = [
            np.random.default_rng([seed, step]).standard_normal((m.chunk_length, m.action_dim))
            for step in steps
        ]
        return np.stack(rows).astype(np.float32)

    # -- checks ---------------------------------------------------------------------------
    def _image_feed(
        self, camera: str, images: dict[str, np.ndarray], height: int | None, width: int | None, dtype: str
    ) -> np.ndarray:
        if camera not in images:
            raise PolicyInputError(f"image input needs camera '{camera}', which is missing")
        batch = np.asarray(images[camera])
        if batch.ndim != 4 or batch.shape[1:] != (height, width, 3) or batch.dtype != np.uint8:
            raise PolicyInputError(
                f"camera '{camera}' gives {batch.shape[1:]} {batch.dtype}, expected ({height}, {width}, 3) uint8"
            )
        nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return nchw if dtype == "uint8" else nchw.astype(np.float32) * np.float32(1.0 / 255.0)

    def _check_graph(self) -> None:
        m = self.manifest
        graph_inputs = {i.name for i in self.session.get_inputs()}
        declared = {i.name for i in m.inputs}
        if graph_inputs != declared:
            raise ValueError(
                f"reflex_config.json declares inputs {sorted(declared)} but model.onnx has {sorted(graph_inputs)}"
            )
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if m.output not in outputs:
            raise ValueError(f"model.onnx has no output '{m.output}' (has {sorted(outputs)})")
        shape = outputs[m.output]
        expected = (m.chunk_length, m.action_dim)
        fixed_mismatch = any(isinstance(d, int) and d != e for d, e in zip(shape[1:], expected, strict=True))
        if len(shape) != 3 or fixed_mismatch:
            raise ValueError(
                f"output '{m.output}' has shape {shape}, expected (batch, {expected[0]}, {expected[1]})"
            )

"""Parity fixtures: stored inputs and reference chunks, and the figures that compare them.

The fixture file is a plain ``.npz`` (read with ``allow_pickle=False``): ``state`` (N, state_dim),
``image.<camera>`` (N, H, W, 3) uint8, ``noise.<input>`` (N, *shape), ``task`` (N,) unicode,
``reference`` (N, chunk_length, action_dim) in robot units. ``reflex validate`` re-runs them
through :class:`OnnxPolicy` exactly as a session would, on this machine's providers.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reflex.targets.export_manifest import ExportManifest, FixtureResult

MAX_FIXTURE_BYTES = 512 << 20


@dataclass
class Fixtures:
    state: np.ndarray
    images: dict[str, np.ndarray]
    noise: dict[str, np.ndarray]
    tasks: list[str]
    reference: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def save(self, path: Path) -> None:
        assert self.reference is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"state": self.state, "reference": self.reference,
                                         "task": np.array(self.tasks, dtype=np.str_)}
        arrays.update({f"image.{k}": v for k, v in self.images.items()})
        arrays.update({f"noise.{k}": v for k, v in self.noise.items()})
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: Path) -> Fixtures:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (the export's parity fixtures)")
        if path.stat().st_size > MAX_FIXTURE_BYTES:
            raise ValueError(f"{path} is larger than {MAX_FIXTURE_BYTES} bytes")
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        for key in ("state", "reference", "task"):
            if key not in arrays:
                raise ValueError(f"{path}: missing array '{key}'")
        return cls(
            state=arrays["state"],
            images={k[len("image."):]: v for k, v in arrays.items() if k.startswith("image.")},
            noise={k[len("noise."):]: v for k, v in arrays.items() if k.startswith("noise.")},
            tasks=[str(t) for t in arrays["task"]],
            reference=arrays["reference"],
        )


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` numpy reads, with fixed zip timestamps: the same arrays give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(2020, 1, 1, 0, 0, 0)), buf.getvalue())


def compare(reference: np.ndarray, actual: np.ndarray) -> list[FixtureResult]:
    """Per fixture: max and mean absolute difference, cosine of the flattened chunks."""
    if reference.shape != actual.shape:
        raise ValueError(f"reference chunks have shape {reference.shape}, the export gives {actual.shape}")
    results = []
    for i, (ref, out) in enumerate(zip(reference, actual, strict=True)):
        diff = np.abs(ref.astype(np.float64) - out.astype(np.float64))
        a, b = ref.ravel().astype(np.float64), out.ravel().astype(np.float64)
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosine = float(a @ b / norm) if norm > 0 else (1.0 if np.array_equal(a, b) else 0.0)
        results.append(FixtureResult(fixture=i, max_abs=float(diff.max()), mean_abs=float(diff.mean()),
                                     cosine=cosine))
    return results


def run_fixtures(policy: Any, fixtures: Fixtures) -> np.ndarray:
    """The export's chunks for every fixture, one request at a time (as a session asks)."""
    chunks = []
    for i in range(len(fixtures)):
        chunk = policy.predict_batch(
            fixtures.state[i : i + 1],
            {k: v[i : i + 1] for k, v in fixtures.images.items()},
            [i],
            [fixtures.tasks[i]],
            {k: v[i : i + 1] for k, v in fixtures.noise.items()},
        )
        chunks.append(chunk[0])
    return np.stack(chunks)


def make_fixtures(manifest: ExportManifest, count: int, seed: int) -> Fixtures:
    """Real-shaped random inputs: states within the normalisation range, random images, shared
    noise, and a different instruction per fixture when the model reads text."""
    rng = np.random.default_rng(seed)
    state = _plausible(rng, manifest, count)
    images = {
        spec.camera: rng.integers(0, 256, size=(count, spec.height, spec.width, 3), dtype=np.uint8)
        for spec in manifest.image_inputs()
        if spec.camera and spec.height and spec.width
    }
    noise = {
        spec.name: rng.standard_normal((count, *manifest.noise_shape(spec))).astype(np.float32)
        for spec in manifest.inputs
        if spec.role == "noise"
    }
    words = ("pick up the red cube", "open the drawer", "wave", "push the block left", "stack the cups")
    tasks = [words[i % len(words)] if manifest.has_text() else "" for i in range(count)]
    return Fixtures(state=state, images=images, noise=noise, tasks=tasks)


def _plausible(rng: np.random.Generator, manifest: ExportManifest, count: int) -> np.ndarray:
    stats = manifest.normalization.state
    if stats is None:
        return rng.uniform(-1.0, 1.0, size=(count, manifest.state_dim))
    offset, _, scale = stats.affine()
    return offset + scale * rng.uniform(-1.0, 1.0, size=(count, manifest.state_dim))

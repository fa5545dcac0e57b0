"""A deterministic smoke-test export for any robot: ``reflex export demo --like robot.yaml --out DIR``.

NOT a trained model. A hand-written ONNX graph (built with ``onnx.helper``) that moves every joint
smoothly around the middle of its range, for a robot of any shape (names, limits, units, one
optional camera). In normalised coordinates (centre of the range, a quarter of the range per unit):

* joints are paired; each pair is pushed along a circle of radius ``RADIUS`` and pulled towards it;
* every joint's speed is capped, then scaled by ``0.5 + `` the camera image's mean brightness
  (in [0, 1]) over 1.5, so the image is always used and no joint exceeds ``max_speed`` robot units
  per second: the commands stay within the guard's per-step delta of the measured position;
* every action is clipped inside the joint limits (by a hair), so the guard never clamps;
* a seeded ``noise`` input adds a tiny term, so replay has to reproduce the seed.

Action ``k`` of a chunk is the state moved ``(k+1) * action_dt_s`` seconds along that field.
The export carries parity fixtures whose reference chunks come from :func:`reference_chunks`, a
float64 numpy version of the same formulas, so ``reflex validate`` works on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reflex.targets.export_manifest import ExportManifest, write_manifest

CHUNK = 50
OMEGA = 2 * np.pi / 6.0  # one turn in 6 s at mid brightness
RADIUS = 0.6  # of a quarter range
KAPPA = 1.0  # pull towards the circle
NOISE_SCALE = 1e-4  # normalised: well under 1e-3 rad, enough that replay must reproduce the seed
TOP_SPEED = 1.5  # 0.5 + the brightest image
LIMIT_MARGIN = 1e-4  # of the range: actions stay strictly inside the limits
OPSET = 18
FIXTURES = 5
EPS = 1e-6


def consecutive_pairs(dim: int) -> list[tuple[int, int]]:
    """(0, 1), (2, 3), ...; an odd last joint is left unpaired (pulled to the circle, no swirl)."""
    return [(i, i + 1) for i in range(0, dim - 1, 2)]


class DemoSpec:
    """Everything the graph, manifest and fixtures are derived from."""

    def __init__(
        self,
        names: Sequence[str],
        lower: Sequence[float] | np.ndarray,
        upper: Sequence[float] | np.ndarray,
        *,
        camera: tuple[str, int, int] | None,
        action_dt: float,
        max_speed: float,
        pairs: Sequence[tuple[int, int]] | None = None,
        units: Sequence[str] | None = None,
        grippers: dict[str, list[float]] | None = None,
        seed: int = 7,
        name: str = "reflex-demo-spiral",
        description: str = "",
    ) -> None:
        self.names = list(names)
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        if not (np.all(np.isfinite(self.lower)) and np.all(np.isfinite(self.upper))):
            raise ValueError("the demo needs finite joint limits")
        self.dim = len(self.names)
        self.camera = camera
        self.action_dt = float(action_dt)
        self.max_speed = float(max_speed)
        self.pairs = list(pairs) if pairs is not None else consecutive_pairs(self.dim)
        self.units = list(units) if units else None
        self.grippers = grippers or {}
        self.seed = seed
        self.name = name
        self.description = description
        self.centre = np.round((self.lower + self.upper) / 2, 6)
        span = self.upper - self.lower
        self.scale = np.round(np.where(span > 0, span / 4, 1.0), 6)

    # normalised-space constants
    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        rot = np.zeros((self.dim, self.dim), dtype=np.float32)
        pair_sum = np.eye(self.dim, dtype=np.float32)
        for i, j in self.pairs:
            rot[j, i], rot[i, j] = -1.0, 1.0  # (s @ rot)_i = -s_j ; (s @ rot)_j = s_i
            for a in (i, j):
                for b in (i, j):
                    pair_sum[a, b] = 1.0
        return rot, pair_sum

    def bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(speed cap, lower, upper) in normalised units, float32."""
        span = self.upper - self.lower
        lo = (self.lower + LIMIT_MARGIN * span - self.centre) / self.scale
        hi = (self.upper - LIMIT_MARGIN * span - self.centre) / self.scale
        vmax = self.max_speed / self.scale
        return vmax.astype(np.float32), lo.astype(np.float32), hi.astype(np.float32)


def build_model(spec: DemoSpec) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rot, pair_sum = spec.matrices()
    vmax, lo, hi = spec.bounds()
    consts: dict[str, np.ndarray] = {
        "rot": rot,
        "pair_sum": pair_sum,
        "steps": ((np.arange(CHUNK, dtype=np.float32) + 1) * np.float32(spec.action_dt)).reshape(1, CHUNK, 1),
        "omega": np.array(OMEGA, dtype=np.float32),
        "radius": np.array(RADIUS, dtype=np.float32),
        "kappa": np.array(KAPPA, dtype=np.float32),
        "eps": np.array(EPS, dtype=np.float32),
        "noise_scale": np.array(NOISE_SCALE, dtype=np.float32),
        "vmax": vmax,
        "vmin": -vmax,
        "lo": lo,
        "hi": hi,
        "axis1": np.array([1], dtype=np.int64),
    }
    node = helper.make_node
    nodes = []
    inputs = [helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", spec.dim])]
    if spec.camera is not None:
        _, height, width = spec.camera
        consts.update({"img_axes": np.array([1, 2, 3], dtype=np.int64), "b_shape": np.array([-1, 1], dtype=np.int64),
                       "half": np.array(0.5, dtype=np.float32), "top_speed": np.array(TOP_SPEED, dtype=np.float32)})
        nodes += [
            node("ReduceMean", ["image", "img_axes"], ["brightness"], keepdims=1),  # (B,1,1,1)
            node("Reshape", ["brightness", "b_shape"], ["b2"]),  # (B,1)
            node("Add", ["b2", "half"], ["speed0"]),
            node("Div", ["speed0", "top_speed"], ["speed"]),  # in [1/3, 1]
        ]
        inputs.append(helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, height, width]))
    else:
        consts["speed"] = np.array(1.0, dtype=np.float32)
    inputs.append(helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", CHUNK, spec.dim]))
    nodes += [
        node("MatMul", ["state", "rot"], ["tangent"]),
        node("Mul", ["tangent", "omega"], ["swirl"]),
        node("Mul", ["state", "state"], ["sq"]),
        node("MatMul", ["sq", "pair_sum"], ["r2"]),
        node("Add", ["r2", "eps"], ["r2e"]),
        node("Sqrt", ["r2e"], ["r"]),
        node("Sub", ["radius", "r"], ["gap"]),
        node("Div", ["state", "r"], ["unit"]),
        node("Mul", ["gap", "unit"], ["radial0"]),
        node("Mul", ["radial0", "kappa"], ["radial"]),
        node("Add", ["swirl", "radial"], ["velocity0"]),
        node("Min", ["velocity0", "vmax"], ["velocity1"]),
        node("Max", ["velocity1", "vmin"], ["velocity2"]),
        node("Mul", ["velocity2", "speed"], ["velocity"]),
        node("Unsqueeze", ["velocity", "axis1"], ["v3"]),
        node("Unsqueeze", ["state", "axis1"], ["s3"]),
        node("Mul", ["v3", "steps"], ["travel"]),
        node("Add", ["s3", "travel"], ["mean_actions"]),
        node("Mul", ["noise", "noise_scale"], ["jitter"]),
        node("Add", ["mean_actions", "jitter"], ["free_actions"]),
        node("Min", ["free_actions", "hi"], ["below"]),
        node("Max", ["below", "lo"], ["actions"]),
    ]
    graph = helper.make_graph(
        nodes,
        "reflex_demo_spiral",
        inputs=inputs,
        outputs=[helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", CHUNK, spec.dim])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in sorted(consts.items())],
    )
    model = helper.make_model(graph, producer_name="reflex-demo", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString(deterministic=True))


def reference_chunks(spec: DemoSpec, states: np.ndarray, images: np.ndarray | None, noise: np.ndarray) -> np.ndarray:
    """The graph's formulas in float64 numpy, from raw inputs to robot-unit chunks."""
    rot, pair_sum = (m.astype(np.float64) for m in spec.matrices())
    vmax, lo, hi = (b.astype(np.float64) for b in spec.bounds())
    s = (states - spec.centre) / spec.scale
    if images is not None:
        speed = ((images.astype(np.float64).mean(axis=(1, 2, 3)) / 255.0 + 0.5) / TOP_SPEED)[:, None]
    else:
        speed = np.ones((len(s), 1))
    r = np.sqrt((s * s) @ pair_sum + EPS)
    velocity = np.clip((s @ rot) * OMEGA + KAPPA * (RADIUS - r) * s / r, -vmax, vmax) * speed
    steps = (np.arange(CHUNK) + 1.0) * spec.action_dt
    actions = s[:, None] + velocity[:, None] * steps[None, :, None] + NOISE_SCALE * noise
    return np.clip(actions, lo, hi) * spec.scale + spec.centre


def manifest(spec: DemoSpec, parity: dict[str, Any] | None) -> ExportManifest:
    stats = {"mean": [float(x) for x in spec.centre], "std": [float(x) for x in spec.scale]}
    inputs: list[dict[str, Any]] = [{"name": "state", "role": "state"}]
    if spec.camera is not None:
        camera, height, width = spec.camera
        inputs.append({"name": "image", "role": "image", "camera": camera, "height": height, "width": width})
    inputs.append({"name": "noise", "role": "noise"})
    return ExportManifest.model_validate({
        "format_version": 2,
        "name": spec.name,
        "description": spec.description,
        "model_file": "model.onnx",
        "state_dim": spec.dim,
        "action_dim": spec.dim,
        "chunk_length": CHUNK,
        "action_dt_s": spec.action_dt,
        "state_names": spec.names,
        "action_names": spec.names,
        "inputs": inputs,
        "output": "actions",
        "normalization": {"state": stats, "action": stats},
        "action_semantics": {"kind": "absolute", "units": spec.units, "gripper_ranges": spec.grippers},
        "seed": spec.seed,
        "provenance": {"source_kind": "demo", "source": "demo", "exporter": "reflex.demo.any_robot", "opset": OPSET},
        "parity": parity,
    })


def fixture_arrays(spec: DemoSpec) -> dict[str, np.ndarray]:
    """Seeded inputs spread over the joint ranges (and beyond the circle), with their reference."""
    rng = np.random.default_rng([spec.seed, 2024])
    states = spec.lower + (spec.upper - spec.lower) * rng.uniform(0.0, 1.0, size=(FIXTURES, spec.dim))
    arrays: dict[str, np.ndarray] = {"state": states}
    images = None
    if spec.camera is not None:
        camera, height, width = spec.camera
        images = rng.integers(0, 256, size=(FIXTURES, height, width, 3), dtype=np.uint8)
        arrays[f"image.{camera}"] = images
    noise = rng.standard_normal((FIXTURES, CHUNK, spec.dim)).astype(np.float32)
    arrays["noise.noise"] = noise
    arrays["task"] = np.array([""] * FIXTURES, dtype=np.str_)
    arrays["reference"] = reference_chunks(spec, states, images, noise.astype(np.float64))
    return arrays


def build(spec: DemoSpec, out: Path) -> dict[str, Any]:
    """Write model.onnx, fixtures and reflex_config.json (after checking parity with ONNX Runtime)."""
    from reflex.export.parity import Fixtures, compare, run_fixtures, write_npz
    from reflex.policy.onnx_policy import OnnxPolicy

    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(build_model(spec))
    arrays = fixture_arrays(spec)
    write_npz(out / "fixtures" / "fixtures.npz", arrays)
    write_manifest(out, manifest(spec, None))
    fixtures = Fixtures.load(out / "fixtures" / "fixtures.npz")
    assert fixtures.reference is not None
    results = compare(fixtures.reference, run_fixtures(OnnxPolicy(out, providers=["cpu"]), fixtures))
    worst = max(r.max_abs for r in results)
    threshold = 1e-4
    if worst > threshold:
        raise RuntimeError(f"demo graph disagrees with its reference: max_abs {worst}")
    parity = {"threshold": threshold, "fixtures_file": "fixtures/fixtures.npz",
              "reference": "reflex.demo.any_robot.reference_chunks (float64 numpy)",
              # figures rounded so a rebuild on another machine writes the same bytes
              "providers": ["CPUExecutionProvider"], "max_abs": _round(worst),
              "results": [{"fixture": r.fixture, "max_abs": _round(r.max_abs), "mean_abs": _round(r.mean_abs),
                           "cosine": round(r.cosine, 6)} for r in results]}
    write_manifest(out, manifest(spec, parity))
    return {"maxAbs": worst, "dim": spec.dim, "camera": spec.camera[0] if spec.camera else None}


def _round(x: float) -> float:
    """One significant figure, rounded up to a power of ten: a stable bound, not a noisy reading."""
    return float(10.0 ** np.ceil(np.log10(max(x, 1e-12))))


def build_demo_export(
    robot: dict[str, Any], out: Path, *, seed: int = 0, action_dt: float | None = None, name: str | None = None
) -> dict[str, Any]:
    """``reflex export demo --like``: fit the robot's joints, limits, units and first camera."""
    cameras = robot["cameras"]
    camera = None
    if cameras:
        first = sorted(cameras)[0]
        camera = (first, *cameras[first])
    dt = action_dt if action_dt is not None else robot["dt"]
    max_delta = robot["max_delta"]
    step_cap = float(np.min(max_delta)) if isinstance(max_delta, (list, tuple)) else float(max_delta)
    spec = DemoSpec(
        robot["names"], robot["lower"], robot["upper"], camera=camera, action_dt=dt,
        max_speed=0.1 * step_cap / dt, units=robot["units"], grippers=robot["grippers"], seed=seed,
        name=name or "reflex-demo-any-robot",
        description="Smoke-test policy (not trained) fitted to a robot by `reflex export demo --like`.",
    )
    return build(spec, out)

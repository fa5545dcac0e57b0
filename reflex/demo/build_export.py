"""Build the demo export: ``python -m reflex.demo.build_export [OUT_DIR]``.

The demo policy is a smoke test, NOT a trained model. It is a hand-written ONNX graph that makes
the 14-D bimanual state circle around the middle of its joint ranges, so a session visibly moves:

* joints are paired (j1/j2, j3/j4, j5/j6 on each arm, and the two grippers); in normalised
  coordinates each pair is pushed along a circle of radius 1 (a quarter of the joint range);
* the angular speed is scaled by the mean brightness of the ``top`` camera image, so the image
  input really is used and a replay without the right images would not match;
* a seeded ``noise`` input adds a tiny (1e-3) term, so replay has to reproduce the seed.

Action ``k`` of a chunk is the state extrapolated ``(k+1) * action_dt_s`` seconds along that
vector field. The graph is built with ``onnx.helper`` (the ``export`` extra), deterministically:
running this script again yields byte-identical files (a test checks the committed copy).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from reflex.hardware.yam_layout import yam_bimanual_layout

CHUNK = 50
DT = 0.02
IMAGE_H, IMAGE_W = 96, 128
PAIRS = ((0, 1), (2, 3), (4, 5), (7, 8), (9, 10), (11, 12), (6, 13))
OMEGA = 2 * np.pi / 4.0  # one turn in 4 s at mid brightness
KAPPA = 1.0  # pull towards the unit circle
NOISE_SCALE = 1e-3
SEED = 7
OPSET = 18
DEFAULT_OUT = Path(__file__).parent / "exports" / "demo"


def _matrices(dim: int) -> tuple[np.ndarray, np.ndarray]:
    rot = np.zeros((dim, dim), dtype=np.float32)
    pair_sum = np.zeros((dim, dim), dtype=np.float32)
    for i, j in PAIRS:
        rot[j, i], rot[i, j] = -1.0, 1.0  # (s @ rot)_i = -s_j ; (s @ rot)_j = s_i
        for a in (i, j):
            for b in (i, j):
                pair_sum[a, b] = 1.0
    return rot, pair_sum


def build_model(dim: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rot, pair_sum = _matrices(dim)
    steps = ((np.arange(CHUNK, dtype=np.float32) + 1) * DT).reshape(1, CHUNK, 1)
    consts = {
        "rot": rot,
        "pair_sum": pair_sum,
        "steps": steps,
        "omega": np.array(OMEGA, dtype=np.float32),
        "half": np.array(0.5, dtype=np.float32),
        "kappa": np.array(KAPPA, dtype=np.float32),
        "one": np.array(1.0, dtype=np.float32),
        "eps": np.array(1e-6, dtype=np.float32),
        "noise_scale": np.array(NOISE_SCALE, dtype=np.float32),
        "axis1": np.array([1], dtype=np.int64),
        "img_axes": np.array([1, 2, 3], dtype=np.int64),
    }
    node = helper.make_node
    nodes = [
        node("ReduceMean", ["image", "img_axes"], ["brightness"], keepdims=1),  # (B,1,1,1)
        node("Reshape", ["brightness", "b_shape"], ["b2"]),  # (B,1)
        node("Add", ["b2", "half"], ["speed"]),
        node("Mul", ["speed", "omega"], ["w"]),
        node("MatMul", ["state", "rot"], ["tangent"]),
        node("Mul", ["tangent", "w"], ["swirl"]),
        node("Mul", ["state", "state"], ["sq"]),
        node("MatMul", ["sq", "pair_sum"], ["r2"]),
        node("Add", ["r2", "eps"], ["r2e"]),
        node("Sqrt", ["r2e"], ["r"]),
        node("Sub", ["one", "r"], ["gap"]),
        node("Div", ["state", "r"], ["unit"]),
        node("Mul", ["gap", "unit"], ["radial0"]),
        node("Mul", ["radial0", "kappa"], ["radial"]),
        node("Add", ["swirl", "radial"], ["velocity"]),
        node("Unsqueeze", ["velocity", "axis1"], ["v3"]),
        node("Unsqueeze", ["state", "axis1"], ["s3"]),
        node("Mul", ["v3", "steps"], ["travel"]),
        node("Add", ["s3", "travel"], ["mean_actions"]),
        node("Mul", ["noise", "noise_scale"], ["jitter"]),
        node("Add", ["mean_actions", "jitter"], ["actions"]),
    ]
    consts["b_shape"] = np.array([-1, 1], dtype=np.int64)
    graph = helper.make_graph(
        nodes,
        "reflex_demo_spiral",
        inputs=[
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", dim]),
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, IMAGE_H, IMAGE_W]),
            helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", CHUNK, dim]),
        ],
        outputs=[helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", CHUNK, dim])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in sorted(consts.items())],
    )
    model = helper.make_model(
        graph, producer_name="reflex-demo", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def build_manifest() -> dict[str, object]:
    layout = yam_bimanual_layout()
    centre = (layout.lower + layout.upper) / 2
    quarter = (layout.upper - layout.lower) / 4
    stats = {"mean": [round(float(x), 6) for x in centre], "std": [round(float(x), 6) for x in quarter]}
    grippers = {n: [float(lo), float(hi)] for n, lo, hi in zip(layout.names, layout.lower, layout.upper, strict=True)
                if n.endswith("gripper")}
    return {
        "format_version": 2,
        "name": "reflex-demo-spiral",
        "description": "Smoke-test policy (not trained): circles the joints around mid-range. "
        "Built by reflex/demo/build_export.py.",
        "model_file": "model.onnx",
        "state_dim": layout.dim,
        "action_dim": layout.dim,
        "chunk_length": CHUNK,
        "action_dt_s": DT,
        "state_names": list(layout.names),
        "action_names": list(layout.names),
        "inputs": [
            {"name": "state", "role": "state"},
            {"name": "image", "role": "image", "camera": "top", "height": IMAGE_H, "width": IMAGE_W},
            {"name": "noise", "role": "noise"},
        ],
        "output": "actions",
        "normalization": {"state": stats, "action": stats},
        "action_semantics": {"kind": "absolute", "units": list(layout.units or ()), "gripper_ranges": grippers},
        "seed": SEED,
        "provenance": {"source_kind": "demo", "source": "reflex/demo/build_export.py",
                       "exporter": "reflex.demo.build_export", "opset": OPSET},
    }


def _write_manifest(out_dir: Path, manifest: dict[str, object]) -> None:
    """Through the manifest model, so the file is complete (defaults included) and valid."""
    from reflex.targets.export_manifest import ExportManifest, write_manifest

    write_manifest(out_dir, ExportManifest.model_validate(manifest))


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(build_model(yam_bimanual_layout().dim))
    _write_manifest(out_dir, build_manifest())
    return out_dir


STATE_ONLY_OUT = Path(__file__).parent / "exports" / "demo_state_only"


def build_state_only_model(dim: int) -> bytes:
    """The demo graph without its image input: the speed is fixed at mid brightness.

    Derived from :func:`build_model` (whose bytes stay as they are) by cutting the brightness
    branch and feeding its result ``w`` as a constant. For robots with no camera, e.g. simulated
    YAM arms on a CAN bus (``builtin:demo_state_only``).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(build_model(dim))
    graph = model.graph
    branch = {"brightness", "b2", "speed", "w"}
    keep = [n for n in graph.node if not set(n.output) & branch]
    unused = {"img_axes", "b_shape", "half"}
    inits = [i for i in graph.initializer if i.name not in unused]
    inits.append(numpy_helper.from_array(np.array(OMEGA * (0.5 + 0.5), dtype=np.float32), name="w"))
    inputs = [i for i in graph.input if i.name != "image"]
    new_graph = helper.make_graph(
        keep,
        "reflex_demo_spiral_state_only",
        inputs=inputs,
        outputs=list(graph.output),
        initializer=sorted(inits, key=lambda t: t.name),
    )
    out = helper.make_model(new_graph, producer_name="reflex-demo", opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out.SerializeToString(deterministic=True)


def build_state_only(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest()
    manifest["name"] = "reflex-demo-spiral-state-only"
    manifest["description"] = (
        "Smoke-test policy (not trained), state only: circles the joints around mid-range at a "
        "fixed speed. Built by reflex/demo/build_export.py --state-only."
    )
    manifest["inputs"] = [i for i in manifest["inputs"] if i["role"] != "image"]  # type: ignore[attr-defined]
    (out_dir / "model.onnx").write_bytes(build_state_only_model(yam_bimanual_layout().dim))
    _write_manifest(out_dir, manifest)
    return out_dir


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--state-only"]
    state_only = "--state-only" in sys.argv[1:]
    default = STATE_ONLY_OUT if state_only else DEFAULT_OUT
    target = Path(args[0]) if args else default
    print(build_state_only(target) if state_only else build(target))

"""Build the flow-matching demo export: ``python -m reflex.demo.build_flow_export [OUT_DIR]``.

A smoke-test policy, NOT a trained model, that samples its chunk the way pi0 / SmolVLA do (flow
matching, Euler steps from noise) and supports RTC-style prefix conditioning (guided denoising),
so Reflex's prefix path is tested end to end (``builtin:demo_flow``, docs/execution.md).

The data distribution, in normalised action space, is ``mu(state)``, the joint pairs of the demo
(reflex/demo/build_export.py) turning around mid-range at its speed, action ``k`` the state turned
``(k + 1) * action_dt`` further, plus one random offset per joint held over the chunk:
``x1 = mu + sigma * (1_H (x) z)``, ``z ~ N(0, I)``. So unguided, successive chunks disagree by a
random offset, like a stochastic policy. With ``x_t = t x1 + (1 - t) x0`` (t from 0 = noise to
1 = data, the Kinetix convention) the exact velocity is closed-form: with ``y = x_t - t mu``,
``m`` its mean over the chunk and ``r = y - m``,

    v = mu + c(t) m - r / (1 - t),  c(t) = (t sigma^2 - (1 - t)/H) / (t^2 sigma^2 + (1 - t)^2 / H)

and the clean estimate ``x1_hat = x_t + (1 - t) v = mu + alpha(t) m`` with ``alpha = 1 + (1 - t) c``.

Guidance (Black et al. 2025, the PiGDM step): ``e = W * (Y - x1_hat)`` with ``Y`` the prefix and
``W`` the soft mask (at least 1 on the ``prefix_frozen`` rows); the correction is the exact
vector-Jacobian product of ``x1_hat``, ``alpha * sum_H(e)``, divided by the mask's mass so that a
short prefix pulls as hard as a long one; ``v' = v + g(t) * correction`` with
``g = min(beta, (t^2 + (1 - t)^2) / (t (1 - t)))``, ``beta = 10`` (= the number of steps, as
LeRobot recommends). With zero weights (no plan yet) the sampler is the unguided one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from reflex.demo.build_export import CHUNK, DT, OMEGA, OPSET, SEED, build_manifest

STEPS = 10
SIGMA = 0.1  # offset std, normalised units (a quarter of a joint's range each)
BETA = 10.0
DEFAULT_OUT = Path(__file__).parent / "exports" / "demo_flow"


def _schedule() -> list[dict[str, float]]:
    out = []
    for i in range(STEPS):
        t = i / STEPS
        c = (t * SIGMA**2 - (1 - t) / CHUNK) / (t**2 * SIGMA**2 + (1 - t) ** 2 / CHUNK)
        g = BETA if t == 0 else min(BETA, (t**2 + (1 - t) ** 2) / (t * (1 - t)))
        out.append({"t": t, "c": c, "inv": 1 / (1 - t), "alpha": 1 + (1 - t) * c, "g": g})
    return out


def build_model(dim: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from reflex.demo.build_export import _matrices

    rot, _ = _matrices(dim)
    angle = OMEGA * (np.arange(CHUNK) + 1) * DT  # the state-only demo's speed, one turn in 4 s
    f32 = np.float32
    consts: dict[str, np.ndarray] = {
        "rot": rot,
        "cos": np.cos(angle).astype(f32).reshape(1, CHUNK, 1),
        "sin": np.sin(angle).astype(f32).reshape(1, CHUNK, 1),
        "eps": np.array(1e-6, dtype=f32), "axis1": np.array([1], dtype=np.int64),
        "axis2": np.array([2], dtype=np.int64), "rows": np.arange(CHUNK, dtype=np.int64).reshape(1, CHUNK),
        "dt_flow": np.array(1.0 / STEPS, dtype=f32),
    }
    node = helper.make_node
    nodes = [  # mu: each joint pair turned further around mid-range, one angle per action
        node("MatMul", ["state", "rot"], ["tangent"]),
        node("Unsqueeze", ["tangent", "axis1"], ["tan3"]),
        node("Unsqueeze", ["state", "axis1"], ["s3"]),
        node("Mul", ["s3", "cos"], ["s_cos"]),
        node("Mul", ["tan3", "sin"], ["t_sin"]),
        node("Add", ["s_cos", "t_sin"], ["mu"]),
        # W: the soft mask, at least 1 on the frozen rows; its mass normalises the correction
        node("Unsqueeze", ["prefix_frozen", "axis1"], ["frozen2"]),
        node("Less", ["rows", "frozen2"], ["is_frozen"]),
        node("Cast", ["is_frozen"], ["frozen_w"], to=TensorProto.FLOAT),
        node("Max", ["prefix_weights", "frozen_w"], ["w2"]),
        node("Unsqueeze", ["w2", "axis2"], ["w3"]),
        node("ReduceSum", ["w3", "axis1"], ["w_mass0"], keepdims=1),
        node("Max", ["w_mass0", "eps"], ["w_mass"]),
    ]
    x = "noise"
    for i, s in enumerate(_schedule()):
        for key in ("t", "c", "inv", "alpha", "g"):
            consts[f"{key}{i}"] = np.array(s[key], dtype=f32)
        p = f"s{i}_"
        nodes += [
            node("Mul", ["mu", f"t{i}"], [p + "tmu"]),
            node("Sub", [x, p + "tmu"], [p + "y"]),
            node("ReduceMean", [p + "y", "axis1"], [p + "m"], keepdims=1),
            node("Sub", [p + "y", p + "m"], [p + "r"]),
            node("Mul", [p + "m", f"c{i}"], [p + "cm"]),
            node("Mul", [p + "r", f"inv{i}"], [p + "rinv"]),
            node("Sub", [p + "cm", p + "rinv"], [p + "dv"]),
            node("Add", ["mu", p + "dv"], [p + "v"]),
            node("Mul", [p + "m", f"alpha{i}"], [p + "am"]),
            node("Add", ["mu", p + "am"], [p + "xhat"]),
            node("Sub", ["prefix", p + "xhat"], [p + "err"]),
            node("Mul", ["w3", p + "err"], [p + "e"]),
            node("ReduceSum", [p + "e", "axis1"], [p + "esum"], keepdims=1),
            node("Div", [p + "esum", "w_mass"], [p + "emean"]),
            node("Mul", [p + "emean", f"alpha{i}"], [p + "corr"]),
            node("Mul", [p + "corr", f"g{i}"], [p + "gcorr"]),
            node("Add", [p + "v", p + "gcorr"], [p + "vg"]),
            node("Mul", [p + "vg", "dt_flow"], [p + "dx"]),
            node("Add", [x, p + "dx"], ["actions" if i == STEPS - 1 else p + "x"]),
        ]
        x = p + "x"
    graph = helper.make_graph(
        nodes,
        "reflex_demo_flow",
        inputs=[
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", dim]),
            helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", CHUNK, dim]),
            helper.make_tensor_value_info("prefix", TensorProto.FLOAT, ["batch", CHUNK, dim]),
            helper.make_tensor_value_info("prefix_frozen", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("prefix_weights", TensorProto.FLOAT, ["batch", CHUNK]),
        ],
        outputs=[helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", CHUNK, dim])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in sorted(consts.items())],
    )
    model = helper.make_model(graph, producer_name="reflex-demo", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def build(out_dir: Path) -> Path:
    from reflex.demo.build_export import _write_manifest
    from reflex.hardware.yam_layout import yam_bimanual_layout

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(build_model(yam_bimanual_layout().dim))
    manifest = build_manifest()
    manifest.update({
        "name": "reflex-demo-flow",
        "description": "Smoke-test flow-matching policy (not trained) with RTC prefix conditioning: the demo "
        "spiral plus a random per-chunk offset, sampled in 10 guided Euler steps. Built by "
        "reflex/demo/build_flow_export.py.",
        "inputs": [
            {"name": "state", "role": "state"},
            {"name": "noise", "role": "noise"},
            {"name": "prefix", "role": "prefix"},
            {"name": "prefix_frozen", "role": "prefix_frozen", "dtype": "int64"},
            {"name": "prefix_weights", "role": "prefix_weights"},
        ],
        "seed": SEED,
        "provenance": {"source_kind": "demo", "source": "reflex/demo/build_flow_export.py",
                       "exporter": "reflex.demo.build_flow_export", "opset": OPSET},
    })
    _write_manifest(out_dir, manifest)
    return out_dir


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))

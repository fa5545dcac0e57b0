"""Build the bundled demo exports: ``python -m reflex.demo.build_export [--state-only] [OUT_DIR]``.

The demo policy is a smoke test, NOT a trained model: the any-robot demo graph
(``reflex/demo/any_robot.py``) fitted to the simulated YAM bimanual robot. Its joints circle
smoothly around mid-range (arm joints paired j1/j2, j3/j4, j5/j6, the two grippers paired), at
most 0.25 rad/s (or gripper units/s) and always inside the joint limits, so a ``make demo`` session
shows the guard clamping nothing. The ``top`` camera's brightness sets the speed; a seeded noise
input adds a tiny term. ``demo_state_only`` is the same without the image (for robots with no
camera, e.g. simulated YAM arms on a CAN bus).

Deterministic: running this again yields byte-identical files (a test checks the committed copy).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from reflex.demo.any_robot import DemoSpec, build
from reflex.hardware.yam_layout import yam_bimanual_layout

DT = 0.02
MAX_SPEED = 0.25  # rad/s: 0.005 rad per 50 Hz step, a tenth of the demo session's max_delta of 0.05
IMAGE_H, IMAGE_W = 96, 128
PAIRS = ((0, 1), (2, 3), (4, 5), (7, 8), (9, 10), (11, 12), (6, 13))
SEED = 7
DEFAULT_OUT = Path(__file__).parent / "exports" / "demo"
STATE_ONLY_OUT = Path(__file__).parent / "exports" / "demo_state_only"


def yam_demo_spec(with_camera: bool) -> DemoSpec:
    layout = yam_bimanual_layout()
    grippers = {n: [float(lo), float(hi)] for n, lo, hi in zip(layout.names, layout.lower, layout.upper, strict=True)
                if n.endswith("gripper")}
    which = "" if with_camera else ", state only (fixed speed)"
    return DemoSpec(
        layout.names, layout.lower, layout.upper,
        camera=("top", IMAGE_H, IMAGE_W) if with_camera else None,
        action_dt=DT, max_speed=MAX_SPEED, pairs=PAIRS, units=layout.units, grippers=grippers, seed=SEED,
        name="reflex-demo-spiral" if with_camera else "reflex-demo-spiral-state-only",
        description=f"Smoke-test policy (not trained){which}: circles the joints around mid-range, inside "
        "the limits. Built by reflex/demo/build_export.py.",
    )


def build_demo(out_dir: Path, with_camera: bool = True) -> Path:
    build(yam_demo_spec(with_camera), out_dir)
    return out_dir


# -- shared with the flow-matching demo (build_flow_export.py): its chunk, its spiral speed (one
# turn in 4 s), the YAM pairing and the YAM fields of its manifest ---------------------------------
CHUNK = 50
OMEGA = 2 * np.pi / 4.0
OPSET = 18


def _matrices(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(rot, pair_sum) of the YAM pairs: ``(s @ rot)_i = -s_j``, ``(s @ rot)_j = s_i``."""
    rot = np.zeros((dim, dim), dtype=np.float32)
    pair_sum = np.zeros((dim, dim), dtype=np.float32)
    for i, j in PAIRS:
        rot[j, i], rot[i, j] = -1.0, 1.0
        for a in (i, j):
            for b in (i, j):
                pair_sum[a, b] = 1.0
    return rot, pair_sum


def build_manifest() -> dict[str, Any]:
    """The YAM demo manifest fields (names, normalisation, action semantics) as a dict."""
    layout = yam_bimanual_layout()
    centre = (layout.lower + layout.upper) / 2
    quarter = (layout.upper - layout.lower) / 4
    stats = {"mean": [round(float(x), 6) for x in centre], "std": [round(float(x), 6) for x in quarter]}
    grippers = {n: [float(lo), float(hi)] for n, lo, hi in zip(layout.names, layout.lower, layout.upper, strict=True)
                if n.endswith("gripper")}
    return {
        "format_version": 2,
        "name": "reflex-demo-spiral",
        "model_file": "model.onnx",
        "state_dim": layout.dim,
        "action_dim": layout.dim,
        "chunk_length": CHUNK,
        "action_dt_s": DT,
        "state_names": list(layout.names),
        "action_names": list(layout.names),
        "inputs": [],
        "output": "actions",
        "normalization": {"state": stats, "action": stats},
        "action_semantics": {"kind": "absolute", "units": list(layout.units or ()), "gripper_ranges": grippers},
        "seed": SEED,
    }


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Through the manifest model, so the file is complete (defaults included) and valid."""
    from reflex.targets.export_manifest import ExportManifest, write_manifest

    write_manifest(out_dir, ExportManifest.model_validate(manifest))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--state-only"]
    state_only = "--state-only" in sys.argv[1:]
    target = Path(args[0]) if args else (STATE_ONLY_OUT if state_only else DEFAULT_OUT)
    print(build_demo(target, with_camera=not state_only))

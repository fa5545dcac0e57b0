"""Exported ACT: ONNX Runtime CPU chunk latency vs LeRobot's own torch inference, and export time.

Builds a randomly initialised LeRobot ACT policy (14-D state and action, one 96x128 camera,
chunk 50, ResNet-18 backbone with random weights), saves it with LeRobot's ``save_pretrained``,
exports it with ``reflex export`` (timed: graph export, parity gate, total), then times one chunk
request on the same fixture inputs, interleaved in the same run:

* baseline: LeRobot's pipeline in torch: pre-processor -> ``predict_action_chunk`` -> post-processor;
* ORT: the export as a session runs it (``OnnxPolicy.predict``: normalisation, graph, un-normalisation).

Both get the same number of threads (default 1, what a session's local target uses). Prints
p50/p99 of each and the ORT/torch ratio at p50 (target: <= 0.7).

Usage: python bench/export_bench.py [--rounds 200] [--threads 1] [--dim-model 256]
Needs the export extra and LeRobot (make install-export).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build_act(out: Path, dim_model: int) -> None:
    from reflex.export.lerobot_source import prepare_environment

    prepare_environment()
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    from reflex.hardware.yam_layout import yam_bimanual_layout

    torch.manual_seed(0)
    cfg = ACTConfig(
        input_features={
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(14,)),
            "observation.images.top": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 96, 128)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(14,))},
        chunk_size=50, n_action_steps=50, dim_model=dim_model, n_heads=8, dim_feedforward=4 * dim_model,
        n_encoder_layers=2, n_decoder_layers=1, n_vae_encoder_layers=2, latent_dim=32,
        pretrained_backbone_weights=None, device="cpu", push_to_hub=False,
    )
    layout = yam_bimanual_layout()
    lo, hi = torch.tensor(layout.lower, dtype=torch.float32), torch.tensor(layout.upper, dtype=torch.float32)
    vec = {"mean": (lo + hi) / 2, "std": (hi - lo) / 8, "min": lo, "max": hi}
    img = {"mean": torch.full((3, 1, 1), 0.45), "std": torch.full((3, 1, 1), 0.22),
           "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}
    policy = ACTPolicy(cfg)
    pre, post = make_pre_post_processors(
        cfg, dataset_stats={"observation.state": vec, "observation.images.top": img, "action": dict(vec)}
    )
    for part in (policy, pre, post):
        part.save_pretrained(out)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dim-model", type=int, default=256)
    args = parser.parse_args()

    from reflex.export.lerobot_export import ExportOptions, export_lerobot
    from reflex.export.lerobot_source import load_checkpoint
    from reflex.export.parity import Fixtures
    from reflex.policy.onnx_policy import OnnxPolicy

    with tempfile.TemporaryDirectory(prefix="reflex-export-bench-") as tmp:
        ckpt_dir, out = Path(tmp) / "act", Path(tmp) / "export"
        with contextlib.redirect_stdout(sys.stderr):
            build_act(ckpt_dir, args.dim_model)
            t0 = time.perf_counter()
            report = export_lerobot(ckpt_dir, out, ExportOptions(action_dt_s=0.02))
            wall = time.perf_counter() - t0
            import torch

            torch.set_num_threads(args.threads)
            ckpt = load_checkpoint(ckpt_dir)
        assert report.manifest.parity is not None
        ort_policy = OnnxPolicy(out, providers=["cpu"], intra_op_threads=args.threads)
        fixtures = Fixtures.load(out / report.manifest.parity.fixtures_file)

        def torch_chunk(i: int) -> np.ndarray:
            obs = {"observation.state": torch.from_numpy(fixtures.state[i].astype(np.float32)),
                   "observation.images.top": torch.from_numpy(
                       np.ascontiguousarray(fixtures.images["top"][i].transpose(2, 0, 1)).astype(np.float32) / 255.0)}
            with torch.no_grad():
                return np.asarray(ckpt.post(ckpt.policy.predict_action_chunk(ckpt.pre(obs)))[0].numpy())

        def ort_chunk(i: int) -> np.ndarray:
            return ort_policy.predict(fixtures.state[i], {"top": fixtures.images["top"][i]}, i)

        n = len(fixtures)
        for i in range(n):  # warm-up both, and check they agree here too
            diff = float(np.max(np.abs(torch_chunk(i) - ort_chunk(i))))
        times: dict[str, list[float]] = {"torch": [], "ort": []}
        for r in range(args.rounds):
            i = r % n
            pair = [("torch", torch_chunk), ("ort", ort_chunk)]
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                t = time.perf_counter()
                fn(i)
                times[name].append((time.perf_counter() - t) * 1e3)

    params = sum(p.numel() for p in ckpt.policy.parameters()) / 1e6
    t50, o50 = percentile(times["torch"], 50), percentile(times["ort"], 50)
    print(f"ACT export bench: {params:.1f} M parameters, 14-D, 1 camera 96x128, chunk 50, "
          f"{args.threads} threads, {args.rounds} rounds (torch and ORT interleaved)")
    print(f"export wall time: {wall:.1f} s (graph export {report.export_s:.1f} s, parity gate "
          f"{report.parity_s:.1f} s); parity max_abs {report.manifest.parity.max_abs:.2e}; "
          f"bench inputs max_abs {diff:.2e}")
    print(f"baseline LeRobot torch (pre + predict_action_chunk + post): p50 {t50:.2f} ms  "
          f"p99 {percentile(times['torch'], 99):.2f} ms")
    print(f"reflex export on ORT CPU (OnnxPolicy.predict):             p50 {o50:.2f} ms  "
          f"p99 {percentile(times['ort'], 99):.2f} ms")
    ratio = o50 / t50
    print(f"ORT / torch at p50: {ratio:.2f}x (target <= 0.7: {'met' if ratio <= 0.7 else 'NOT met'})")


if __name__ == "__main__":
    main()

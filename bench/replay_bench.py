"""Replay throughput: ``reflex replay`` of sim-demo recordings against the demo export, on CPU.

Records two sessions with the real runner (sim robot + demo policy, 50 Hz, JSONL):

* ``default``: the default chunk schedule (a new 50-action chunk about once a second);
* ``replan``: ``prefetch_margin_s: 0.9``, a new chunk about every 0.1 s (many inferences),

and two datasets Reflex did not record (``--foreign``, on by default): a LeRobot v3.0 dataset
written by LeRobot's own writer (2 episodes, an H.264 video and a PNG image camera) and an MCAP
written by the plain ``mcap`` writer with Foxglove topics; those are scored open loop against
their demonstrated actions (every frame, the policy's whole chunk).

Each is replayed batched and one-at-a-time in the same run and it prints, per scenario:
steps/s, the real-time factor (recorded seconds per second of replay; the baseline is the
recording's own real-time rate) and the batched/unbatched ratio. Reading the recording is
included; the one-off target start-up is reported apart.

Usage: python bench/replay_bench.py [--seconds 10] [--repeats 5] [--formats jsonl,mcap]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def record(out: Path, seconds: float, formats: list[str], margin: float | None) -> Path:
    from reflex.runtime.session import run_session_file

    config: dict[str, Any] = {
        "mode": "apply_actions",
        "control_rate_hz": 50,
        "max_steps": int(seconds * 50),
        "task": "wave both arms",
        "target": {"kind": "local", "export": "builtin:demo"},
        "hardware": {"kind": "sim"},
        "cameras": {"top": {"kind": "sim", "width": 128, "height": 96, "fps": 30}},
        "safety": {"max_hold_steps": 1000},
        "record": {"formats": formats},
    }
    if margin is not None:
        config["chunking"] = {"prefetch_margin_s": margin}
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config))
    result = run_session_file(path, record_dir=str(out))
    if not result.ok:
        raise SystemExit(f"recording failed: {result.errors}")
    return out


def foreign(out: Path, seconds: float) -> dict[str, Path]:
    """A LeRobot dataset by LeRobot's writer and a Foxglove MCAP, ``seconds`` long each at 50 Hz."""
    sys.path.insert(0, str(REPO / "tests"))
    from foreign_datasets import write_lerobot, write_mcap

    frames = int(seconds * 50)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "lerobot": write_lerobot(out / "lerobot_ds", out, episodes=2, frames=frames // 2, fps=50),
        "mcap": write_mcap(out / "teleop.mcap", frames=frames, fps=50),
    }


def measure(path: Path, fmt: str | None, batch: bool, repeats: int) -> dict[str, float]:
    from reflex.replay.runner import ReplayOptions, replay

    runs = []
    for _ in range(repeats):
        report = replay([path], "builtin:demo", ReplayOptions(fmt=fmt, batch=batch))
        assert report.results[0].determinism.status in ("reproduced", "cannot_verify", "demonstration"), \
            report.results[0].determinism
        runs.append(report)
    work = [r.read_s + r.replay_s for r in runs]
    best = runs[work.index(min(work))]
    timing = best.timing()
    return {
        "steps": timing["steps"],
        "chunks": sum(len(r.inputs) for r in best.results),
        "recorded_s": timing["recordedS"],
        "median_s": statistics.median(work),
        "steps_per_s": timing["steps"] / statistics.median(work),
        "rt_factor": timing["recordedS"] / statistics.median(work),
        "rate_hz": best.results[0].episode.meta.control_rate_hz,
        "connect_s": statistics.median(r.connect_s for r in runs),
        "infer_ms": 1e3 * statistics.median(sum(e.infer_s for e in r.results) for r in runs),
        "observe_ms": 1e3 * statistics.median(sum(e.observe_s for e in r.results) for r in runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--formats", default="jsonl")
    ap.add_argument("--no-foreign", dest="foreign", action="store_false",
                    help="skip the datasets Reflex did not record")
    args = ap.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        scenarios = {
            "default": record(Path(tmp) / "default", args.seconds, formats, None),
            "replan": record(Path(tmp) / "replan", args.seconds, formats, 0.9),
        }
        print(f"replay of {args.seconds:.0f} s sim-demo sessions at 50 Hz against builtin:demo (CPU), "
              f"median of {args.repeats}")
        runs: list[tuple[str, Path, str | None]] = [(n, p, f) for n, p in scenarios.items() for f in formats]
        if args.foreign:
            runs += [(f"foreign {kind}", path, None) for kind, path in foreign(Path(tmp) / "foreign",
                                                                               args.seconds).items()]
        baseline: float | None = None  # the first Reflex recording's batched real-time factor
        for name, path, fmt in runs:
            batched = measure(path, fmt, True, args.repeats)
            baseline = baseline or batched["rt_factor"]
            single = measure(path, fmt, False, args.repeats)
            label = fmt or "open loop vs demonstration"
            print(f"\n[{name} / {label}] {batched['steps']} steps, {batched['chunks']} chunks, "
                  f"{batched['recorded_s']:.2f} s recorded (real time = {batched['rate_hz']:.0f} steps/s); "
                  f"target start-up {batched['connect_s'] * 1e3:.0f} ms (not counted)")
            for how, m in (("batched", batched), ("unbatched", single)):
                print(f"  {how:9s}: {m['median_s'] * 1e3:8.1f} ms  {m['steps_per_s']:9.0f} steps/s  "
                      f"{m['rt_factor']:7.1f}x real time  (observations {m['observe_ms']:.1f} ms, "
                      f"inference {m['infer_ms']:.1f} ms)")
            print(f"  batched / unbatched speed: {single['median_s'] / batched['median_s']:.2f}x; "
                  f"vs the first scenario (same run): {batched['rt_factor'] / baseline:.2f}x; "
                  f"target >= 10x real time: {'PASS' if batched['rt_factor'] >= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()

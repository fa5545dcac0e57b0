"""Replay throughput: ``reflex replay`` of sim-demo recordings against the demo export, on CPU.

Records two sessions with the real runner (sim robot + demo policy, 50 Hz, JSONL):

* ``default``: the default chunk schedule (a new 50-action chunk about once a second);
* ``replan``: ``prefetch_margin_s: 0.9``, a new chunk about every 0.1 s (many inferences),

then replays each batched and one-at-a-time in the same run and prints, per scenario:
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


def measure(path: Path, fmt: str, batch: bool, repeats: int) -> dict[str, float]:
    from reflex.replay.runner import ReplayOptions, replay

    runs = []
    for _ in range(repeats):
        report = replay([path], "builtin:demo", ReplayOptions(fmt=fmt, batch=batch))
        assert report.results[0].determinism.status in ("reproduced", "cannot_verify"), report.results[0].determinism
        runs.append(report)
    work = [r.read_s + r.replay_s for r in runs]
    best = runs[work.index(min(work))]
    timing = best.timing()
    return {
        "steps": timing["steps"],
        "chunks": len(best.results[0].inputs),
        "recorded_s": timing["recordedS"],
        "median_s": statistics.median(work),
        "steps_per_s": timing["steps"] / statistics.median(work),
        "rt_factor": timing["recordedS"] / statistics.median(work),
        "rate_hz": best.results[0].episode.meta.control_rate_hz,
        "connect_s": statistics.median(r.connect_s for r in runs),
        "infer_ms": 1e3 * statistics.median(r.results[0].infer_s for r in runs),
        "observe_ms": 1e3 * statistics.median(r.results[0].observe_s for r in runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--formats", default="jsonl")
    args = ap.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        scenarios = {
            "default": record(Path(tmp) / "default", args.seconds, formats, None),
            "replan": record(Path(tmp) / "replan", args.seconds, formats, 0.9),
        }
        print(f"replay of {args.seconds:.0f} s sim-demo sessions at 50 Hz against builtin:demo (CPU), "
              f"median of {args.repeats}")
        for name, path in scenarios.items():
            for fmt in formats:
                batched = measure(path, fmt, True, args.repeats)
                single = measure(path, fmt, False, args.repeats)
                print(f"\n[{name} / {fmt}] {batched['steps']} steps, {batched['chunks']} chunks, "
                      f"{batched['recorded_s']:.2f} s recorded (real time = {batched['rate_hz']:.0f} steps/s); "
                      f"target start-up {batched['connect_s'] * 1e3:.0f} ms (not counted)")
                for label, m in (("batched", batched), ("unbatched", single)):
                    print(f"  {label:9s}: {m['median_s'] * 1e3:8.1f} ms  {m['steps_per_s']:9.0f} steps/s  "
                          f"{m['rt_factor']:7.1f}x real time  (observations {m['observe_ms']:.1f} ms, "
                          f"inference {m['infer_ms']:.1f} ms)")
                print(f"  batched / unbatched speed: {single['median_s'] / batched['median_s']:.2f}x; "
                      f"target >= 10x real time: {'PASS' if batched['rt_factor'] >= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()

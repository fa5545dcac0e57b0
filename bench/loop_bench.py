"""Control-loop benchmark: the runner on the sim robot + demo policy at 100 Hz, JSONL on.

Prints, each against a baseline measured in the same run:
- tick lateness p50/p99 of the runner vs a bare ``time.sleep`` pacing loop at the same rate;
- per-step runner overhead excluding inference (work done on the control thread per tick);
- time to first action (session start -> first guarded action);
- ``reflex --help`` wall time vs a bare ``python -c pass``.

Usage: python bench/loop_bench.py [--seconds 20] [--rate 100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent


def bare_sleep_loop(rate: float, seconds: float) -> np.ndarray:
    period = 1.0 / rate
    lateness = []
    t_next = time.monotonic()
    end = t_next + seconds
    while t_next < end:
        now = time.monotonic()
        if t_next > now:
            time.sleep(t_next - now)
        lateness.append((time.monotonic() - t_next) * 1e3)
        t_next += period
    return np.asarray(lateness)


def run_session(rate: float, seconds: float, out: Path) -> dict:
    from reflex.runtime.session import run_session_file

    config = {
        "mode": "apply_actions",
        "control_rate_hz": rate,
        "duration_s": seconds,
        "target": {"kind": "local", "export": "builtin:demo"},
        "hardware": {"kind": "sim"},
        "cameras": {"top": {"kind": "sim"}},
        "record": {"formats": ["jsonl"]},
    }
    path = out / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_session_file(path, record_dir=str(out / "rec"))
    return result.to_json()


def command_time(args: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()

    baseline = bare_sleep_loop(args.rate, min(args.seconds, 10.0))
    with tempfile.TemporaryDirectory() as tmp:
        result = run_session(args.rate, args.seconds, Path(tmp))
    assert result["ok"], result["errors"]
    late = result["loop"]["latenessMs"]
    base_p50, base_p99 = np.percentile(baseline, [50, 99])
    tick = result["stagesMs"]["tick"]
    help_s = command_time([sys.executable, "-m", "reflex", "--help"])
    python_s = command_time([sys.executable, "-c", "pass"])

    print(f"loop bench: {args.rate:g} Hz for {args.seconds:g} s, sim robot + demo policy, jsonl recording")
    print(f"  steps {result['steps']}, applied {result['appliedSteps']}, chunks {result['chunks']['received']}, "
          f"dropped {result['recording']['dropped']}, overruns {result['loop']['overruns']}")
    print(f"  lateness p50: runner {late['p50']:.3f} ms, bare sleep {base_p50:.3f} ms, "
          f"ratio {late['p50'] / base_p50:.2f}")
    print(f"  lateness p99: runner {late['p99']:.3f} ms, bare sleep {base_p99:.3f} ms, "
          f"ratio {late['p99'] / base_p99:.2f}  (target <= 2)")
    print(f"  runner overhead per step (control thread, excl. inference): p50 {tick['p50']:.3f} ms, "
          f"p99 {tick['p99']:.3f} ms  (target p50 <= 0.5 ms; {tick['p50'] / (1e3 / args.rate) * 100:.1f}% "
          "of the period)")
    infer = result["stagesMs"]["infer"]
    print(f"  inference (worker thread): p50 {infer['p50']:.3f} ms, p99 {infer['p99']:.3f} ms")
    print(f"  time to first action: {result['timeToFirstActionS']:.3f} s  (target <= 1.5 s)")
    print(f"  reflex --help: {help_s * 1e3:.0f} ms, bare python: {python_s * 1e3:.0f} ms, "
          f"ratio {help_s / python_s:.2f}  (target <= 300 ms)")


if __name__ == "__main__":
    main()

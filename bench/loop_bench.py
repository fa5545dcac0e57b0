"""Control-loop benchmark: the runner on the sim robot + demo policy at 100 Hz, JSONL on.

Prints, each against a baseline measured in the same run:
- tick lateness p50/p99 of the runner vs a bare ``time.sleep`` pacing loop at the same rate;
- per-step runner overhead excluding inference (work done on the control thread per tick);
- time to first action (session start -> first guarded action);
- ``reflex --help`` wall time vs a bare ``python -c pass``;
- the live status line (``--display``) and the live Rerun view (``--view``): lateness p99 with each
  on vs the same session with both off, interleaved runs, median of the repeats (target <= 1.1).

Usage: python bench/loop_bench.py [--seconds 20] [--rate 100] [--display] [--view] [--overhead-seconds 10]
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
sys.path.insert(0, str(REPO))  # this checkout's reflex, not another installed one


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


def run_session(rate: float, seconds: float, out: Path, watchers: list | None = None,
                sinks: list | None = None) -> dict:
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
    result = run_session_file(path, record_dir=str(out / "rec"), watchers=watchers, sinks=sinks)
    return result.to_json()


class TerminalSink:
    """A pseudo-terminal the live line is drawn on, drained by a thread (as a terminal would)."""

    def __init__(self) -> None:
        import os
        import pty
        import threading

        master, slave = pty.openpty()
        self.master = master
        self.stream = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
        self.bytes = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        import os

        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.bytes += len(data)


def overhead(label: str, rate: float, seconds: float, repeats: int, make: object) -> None:
    """Lateness p99 of sessions with a feature on vs off, interleaved so load drifts hit both."""
    off: list[float] = []
    on: list[float] = []
    failed = {False: 0, True: 0}  # sessions ended by a stall or error (a loaded machine), per side
    for _ in range(repeats):
        for sample, feature in ((off, False), (on, True)):
            with tempfile.TemporaryDirectory() as tmp:
                watchers, sinks = make() if feature else ([], [])  # type: ignore[operator]
                result = run_session(rate, seconds, Path(tmp), watchers, sinks)
            if not result["ok"]:
                failed[feature] += 1
                print(f"    ({'on' if feature else 'off'}: {'; '.join(result['errors'])})")
            sample.append(result["loop"]["latenessMs"]["p99"])
    med_off, med_on = statistics.median(off), statistics.median(on)
    print(f"  {label}: lateness p99 on {med_on:.3f} ms vs off {med_off:.3f} ms, ratio {med_on / med_off:.2f}  "
          f"(target <= 1.1; {repeats} interleaved runs of {seconds:g} s each; on {[round(v, 3) for v in on]}, "
          f"off {[round(v, 3) for v in off]}; sessions not ok: on {failed[True]}, off {failed[False]})")


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
    parser.add_argument("--display", action="store_true", help="Measure the live status line's overhead.")
    parser.add_argument("--view", action="store_true", help="Measure the live Rerun view's overhead.")
    parser.add_argument("--overhead-seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.display or args.view:
        print(f"overhead bench: {args.rate:g} Hz, sim robot + demo policy + sim camera, jsonl recording")
    if args.display:
        from reflex.cli.live import LiveStatus

        def display() -> tuple[list, list]:
            return [LiveStatus(TerminalSink().stream)], []

        overhead("live status line", args.rate, args.overhead_seconds, args.repeats, display)
    if args.view:
        from reflex.view.stream import view_sink

        def view() -> tuple[list, list]:
            return [], [view_sink("serve:0")]  # a free port

        overhead("live Rerun view (served, no viewer attached)", args.rate, args.overhead_seconds, args.repeats,
                 view)
    if args.display or args.view:
        return

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

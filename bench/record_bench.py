"""Recording benchmark: 3 cameras 640x480 at 30 Hz, all four formats, on the sim robot.

Runs the same session recording off and on, ``--repeats`` rounds interleaved (off/on, then on/off,
...) in one process so machine noise hits both alike (the demo policy's own 128x96 ``top`` camera
runs in both), and prints, each against the recording-off baseline (ratios are the median over
the rounds, absolute figures the median too):

- dropped items per format (target 0);
- recorder CPU: process CPU with recording on minus off, as % of one core, plus each format's
  busy time on its writer thread and the LeRobot finalize time;
- the control loop's tick lateness p50/p99 on vs off (target: p99 ratio <= 1.2);
- steps run (``duration_s`` counts the loop only, so 60 s at 30 Hz is 1,800 steps);
- bytes written per format and per second.

Usage: python bench/record_bench.py [--seconds 60] [--rate 30] [--repeats 3] [--formats jsonl,lerobot,mcap,rerun]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

CAMERAS = 3
WIDTH, HEIGHT, FPS = 640, 480, 30


def session_file(out: Path, name: str, rate: float, seconds: float, formats: list[str] | None) -> Path:
    cameras: dict[str, Any] = {"top": {"kind": "sim"}}  # what the demo policy looks at (128x96)
    for i in range(CAMERAS):
        cameras[f"cam{i}"] = {"kind": "sim", "width": WIDTH, "height": HEIGHT, "fps": FPS}
    config = {
        "mode": "apply_actions",
        "control_rate_hz": rate,
        "duration_s": seconds,
        "task": "record bench",
        "target": {"kind": "local", "export": "builtin:demo"},
        "hardware": {"kind": "sim"},
        "cameras": cameras,
        # a loaded machine can freeze the runner for a few hundred ms: measure it, do not stop on it
        "safety": {"max_delta": 0.05, "max_command_gap_ms": 1000},
        "record": {"enabled": formats is not None, "formats": formats or ["jsonl"],
                   "dir": str(out / f"rec-{name}")},
    }
    path = out / f"{name}.yaml"
    path.write_text("# yaml-language-server: $schema=../schemas/session.schema.json\n" + yaml.safe_dump(config))
    return path


def run(path: Path) -> tuple[dict[str, Any], float, float]:
    from reflex.runtime.session import run_session_file

    cpu0, wall0 = time.process_time(), time.monotonic()
    result = run_session_file(path).to_json()
    return result, time.process_time() - cpu0, time.monotonic() - wall0


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--formats", default="jsonl,lerobot,mcap,rerun")
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved off/on rounds (median ratio).")
    parser.add_argument("--json", action="store_true", help="Also print every figure as one JSON line.")
    args = parser.parse_args()
    formats = args.formats.split(",")

    offs: list[tuple[dict[str, Any], float, float]] = []
    ons: list[tuple[dict[str, Any], float, float]] = []
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for r in range(args.repeats):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for which in order:
                name = f"{which}{r}"
                run_ = run(session_file(out, name, args.rate, args.seconds, formats if which == "on" else None))
                if not run_[0]["ok"]:  # reported, not hidden: e.g. a recorder that fell behind
                    print(f"  ! round {r} recording {which}: {'; '.join(run_[0]['errors'])[:300]}")
                (ons if which == "on" else offs).append(run_)
                if which == "on":
                    sizes = {f: dir_bytes(out / f"rec-{name}" / f) for f in formats}

    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    p99_ratio = med([
        on["loop"]["latenessMs"]["p99"] / off["loop"]["latenessMs"]["p99"] if off["loop"]["latenessMs"]["p99"] > 0
        else float("inf") for (off, _, _), (on, _, _) in zip(offs, ons, strict=True)
    ])
    cpu_off, cpu_on = med([c for _, c, _ in offs]), med([c for _, c, _ in ons])
    recorder_cpu = (cpu_on - cpu_off) / args.seconds * 100
    on = ons[-1][0]
    rec = on["recording"]
    late = {k: {q: med([x[0]["loop"]["latenessMs"][q] for x in runs]) for q in ("p50", "p99", "max")}
            for k, runs in (("off", offs), ("on", ons))}
    frames = sum(c["newFrames"] for n, c in on["cameras"].items() if n != "top")
    print(f"record bench: {CAMERAS} cameras {WIDTH}x{HEIGHT} @ {FPS} Hz, loop {args.rate:g} Hz, "
          f"{args.seconds:g} s, formats {','.join(formats)}, {args.repeats} interleaved rounds  "
          f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
    print(f"  steps                     off {[x[0]['steps'] for x in offs]}  on {[x[0]['steps'] for x in ons]}  "
          f"(expected {round(args.seconds * args.rate)}; 640x480 frames recorded, last round: {frames})")
    print(f"  dropped                   {[x[0]['recording']['dropped'] for x in ons]}  frames "
          f"{[x[0]['recording'].get('droppedFrames') for x in ons]}  (target 0)  lagging: {rec['lagging'] or 'none'}")
    print(f"  failures                  {rec['failures'] or 'none'}  unfinished: {rec['unfinished'] or 'none'}")
    print(f"  process CPU               off {cpu_off / args.seconds * 100:.1f} %  on "
          f"{cpu_on / args.seconds * 100:.1f} % of one core  -> recorder {recorder_cpu:.1f} % "
          f"(ratio on/off {cpu_on / cpu_off:.2f})")
    print(f"  writer-thread busy s      {rec['recorderBusyS']}  max queue {rec['maxQueue']} "
          f"of {rec['queueSize']}  max backlog MiB {rec.get('maxBacklogMiB')} of {rec.get('queueBudgetMiB')}")
    lerobot = (rec.get("formatStatus") or {}).get("lerobot", {})
    if lerobot:
        print(f"  lerobot finalize          {lerobot.get('finalize_s')} s  rows {lerobot.get('rows')}")
    print(f"  loop lateness p50 ms      off {late['off']['p50']:.3f}  on {late['on']['p50']:.3f}")
    print(f"  loop lateness p99 ms      off {late['off']['p99']:.3f}  on {late['on']['p99']:.3f}  "
          f"-> median ratio {p99_ratio:.2f} (target <= 1.2; per round "
          + ", ".join(f"{o[0]['loop']['latenessMs']['p99']:.2f}/{f[0]['loop']['latenessMs']['p99']:.2f}"
                      for o, f in zip(ons, offs, strict=True)) + ")")
    print(f"  loop lateness max ms      off {late['off']['max']:.3f}  on {late['on']['max']:.3f}  "
          f"overruns off {[x[0]['loop']['overruns'] for x in offs]} on {[x[0]['loop']['overruns'] for x in ons]}")
    print("  written                   " + "  ".join(
        f"{f} {sizes[f] / 2**20:.1f} MiB ({sizes[f] / 2**20 / args.seconds:.2f} MiB/s)" for f in formats))
    if args.json:
        print(json.dumps({
            "dropped": rec["dropped"], "recorderCpuPct": round(recorder_cpu, 2),
            "cpuRatio": round(cpu_on / cpu_off, 3),
            "latenessP99Ms": {"off": late["off"]["p99"], "on": late["on"]["p99"]},
            "latenessP99Ratio": round(p99_ratio, 3), "busyS": rec["recorderBusyS"], "bytes": sizes,
            "steps": {"off": [x[0]["steps"] for x in offs], "on": [x[0]["steps"] for x in ons]},
        }))


if __name__ == "__main__":
    main()

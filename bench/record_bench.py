"""Recording benchmark: 3 cameras 640x480 at 30 Hz, all four formats, on the sim robot.

Runs the same session twice in one process, recording off then on (the demo policy's own 128x96
``top`` camera runs in both), and prints, each against the recording-off baseline:

- dropped items per format (target 0);
- recorder CPU: process CPU with recording on minus off, as % of one core, plus each format's
  busy time on its writer thread and the LeRobot finalize time;
- the control loop's tick lateness p50/p99 on vs off (target: p99 ratio <= 1.2);
- bytes written per format and per second.

Usage: python bench/record_bench.py [--seconds 60] [--rate 30] [--formats jsonl,lerobot,mcap,rerun]
"""

from __future__ import annotations

import argparse
import json
import os
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
        "safety": {"max_delta": 0.05},
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
    parser.add_argument("--json", action="store_true", help="Also print every figure as one JSON line.")
    args = parser.parse_args()
    formats = args.formats.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        off, cpu_off, wall_off = run(session_file(out, "off", args.rate, args.seconds, None))
        on, cpu_on, wall_on = run(session_file(out, "on", args.rate, args.seconds, formats))
        sizes = {f: dir_bytes(out / "rec-on" / f) for f in formats}
    for name, result in (("off", off), ("on", on)):
        assert result["ok"], f"recording {name}: {result['errors']}"

    rec = on["recording"]
    late_off, late_on = off["loop"]["latenessMs"], on["loop"]["latenessMs"]
    recorder_cpu = (cpu_on - cpu_off) / args.seconds * 100
    ratio_p99 = late_on["p99"] / late_off["p99"] if late_off["p99"] > 0 else float("inf")
    frames = sum(c["newFrames"] for n, c in on["cameras"].items() if n != "top")
    print(f"record bench: {CAMERAS} cameras {WIDTH}x{HEIGHT} @ {FPS} Hz, loop {args.rate:g} Hz, "
          f"{args.seconds:g} s, formats {','.join(formats)}  ({os.cpu_count()} cores)")
    print(f"  steps                     off {off['steps']}  on {on['steps']}  "
          f"(640x480 frames recorded: {frames})")
    print(f"  dropped                   {rec['dropped']}  (target 0)  lagging: {rec['lagging'] or 'none'}")
    print(f"  failures                  {rec['failures'] or 'none'}  unfinished: {rec['unfinished'] or 'none'}")
    print(f"  process CPU               off {cpu_off / args.seconds * 100:.1f} %  on "
          f"{cpu_on / args.seconds * 100:.1f} % of one core  -> recorder {recorder_cpu:.1f} % "
          f"(ratio on/off {cpu_on / cpu_off:.2f})")
    print(f"  writer-thread busy s      {rec['recorderBusyS']}  max queue {rec['maxQueue']} "
          f"of {rec['queueSize']}")
    lerobot = (rec.get("formatStatus") or {}).get("lerobot", {})
    if lerobot:
        print(f"  lerobot finalize          {lerobot.get('finalize_s')} s  rows {lerobot.get('rows')}  "
              f"(session wall off {wall_off:.1f} s, on {wall_on:.1f} s)")
    print(f"  loop lateness p50 ms      off {late_off['p50']:.3f}  on {late_on['p50']:.3f}")
    print(f"  loop lateness p99 ms      off {late_off['p99']:.3f}  on {late_on['p99']:.3f}  "
          f"-> ratio {ratio_p99:.2f} (target <= 1.2)")
    print(f"  loop lateness max ms      off {late_off['max']:.3f}  on {late_on['max']:.3f}  "
          f"overruns off {off['loop']['overruns']} on {on['loop']['overruns']}")
    print("  written                   " + "  ".join(
        f"{f} {sizes[f] / 2**20:.1f} MiB ({sizes[f] / 2**20 / args.seconds:.2f} MiB/s)" for f in formats))
    if args.json:
        print(json.dumps({
            "dropped": rec["dropped"], "recorderCpuPct": round(recorder_cpu, 2),
            "cpuRatio": round(cpu_on / cpu_off, 3), "latenessP99Ms": {"off": late_off["p99"], "on": late_on["p99"]},
            "latenessP99Ratio": round(ratio_p99, 3), "busyS": rec["recorderBusyS"], "bytes": sizes,
        }))


if __name__ == "__main__":
    main()

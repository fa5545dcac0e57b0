"""Subprocess connector benchmark: per-call vs persistent mode, measured in the same run.

One "step" is what the control loop asks of the connector each tick: ``read_state`` (observe)
then ``apply`` (one 14-D action). Measured directly on the connector (no policy), unpaced, so
the figure is the connector's own ceiling:

- per-call with bash scripts and with ``python3 -S`` scripts (a process spawn per hook);
- persistent with ``connectors/sim_arm.py`` (14-D state, without and with a 128x96 PNG camera);
- the in-process sim robot as the floor (no process boundary at all).

Every figure is printed as absolute numbers and as a ratio against per-call bash (the baseline).
The target is persistent mode sustaining >= 200 Hz with a 14-D state: checked both unpaced and
with a paced 200 Hz loop (deadline misses counted).

Usage: python bench/subprocess_bench.py [--per-call-steps 60] [--persistent-steps 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reflex.config.base import BuildContext  # noqa: E402
from reflex.hardware.subprocess.config import SubprocessHardwareSpec  # noqa: E402
from reflex.hardware.yam_layout import yam_bimanual_layout  # noqa: E402

LAYOUT = yam_bimanual_layout()
HOME = "0,0,0,0,0,0,1,0,0,0,0,0,0,1"
BASH_OBSERVE = f"cat > /dev/null; printf '{{\"state\":[{HOME}]}}\\n'\n"
BASH_ACT = "cat > /dev/null\n"
PY_OBSERVE = f"import sys; sys.stdin.read(); print('{{\"state\":[{HOME}]}}')\n"
PY_ACT = "import sys; sys.stdin.read()\n"
TARGET_HZ = 200.0


def build(config: dict[str, Any], directory: Path) -> Any:
    spec = SubprocessHardwareSpec.model_validate({"kind": "subprocess", "config": config})
    return spec.build(BuildContext(config_dir=directory, mode="apply_actions", session_id="bench"))


def per_call(directory: Path, kind: str) -> Any:
    if kind == "bash":
        (directory / "observe.sh").write_text(BASH_OBSERVE)
        (directory / "act.sh").write_text(BASH_ACT)
        observe, act = "bash observe.sh", "bash act.sh"
    else:
        (directory / "observe.py").write_text(PY_OBSERVE)
        (directory / "act.py").write_text(PY_ACT)
        observe, act = "python3 -S observe.py", "python3 -S act.py"
    return build(
        {
            "protocol": "per_call", "observe_command": observe, "action_command": act,
            "safe_stop_command": "true", "state_names": list(LAYOUT.names),
            "lower": LAYOUT.lower.tolist(), "upper": LAYOUT.upper.tolist(),
        },
        directory,
    )


def persistent(directory: Path, camera: bool) -> Any:
    command = ["python3", str(REPO / "connectors" / "sim_arm.py")] + ([] if camera else ["--no-camera"])
    return build({"protocol": "persistent", "command": command, "safe_stop_command": "true"}, directory)


def in_process() -> Any:
    from reflex.hardware.sim.config import SimConfig
    from reflex.hardware.sim.robot import SimRobot

    return SimRobot(SimConfig())


def measure(hw: Any, steps: int, paced_hz: float | None = None) -> dict[str, float]:
    """Step times in ms (observe + apply), and deadline misses when paced."""
    hw.connect()
    hw.enable()
    times = []
    misses = 0
    period = 1.0 / paced_hz if paced_hz else 0.0
    t_next = time.monotonic()
    t_start = time.perf_counter()
    for step in range(steps):
        if paced_hz:
            now = time.monotonic()
            if t_next > now:
                time.sleep(t_next - now)
        t0 = time.perf_counter()
        state = hw.read_state()
        action = np.clip(state.position + 0.001, LAYOUT.lower, LAYOUT.upper)
        hw.apply(action, step)
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1e3)
        if paced_hz:
            t_next += period
            if time.monotonic() > t_next:
                misses += 1
    wall = time.perf_counter() - t_start
    hw.close()
    arr = np.asarray(times)
    return {
        "steps": steps,
        "hz": steps / wall,
        "mean_ms": float(arr.mean()),
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "misses": misses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-call-steps", type=int, default=60)
    parser.add_argument("--persistent-steps", type=int, default=2000)
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs: list[tuple[str, Callable[[], Any], int]] = [
            ("per-call bash", lambda: per_call(root, "bash"), args.per_call_steps),
            ("per-call python3", lambda: per_call(root, "python"), args.per_call_steps),
            ("persistent sim_arm", lambda: persistent(root, camera=False), args.persistent_steps),
            ("persistent sim_arm + PNG camera", lambda: persistent(root, camera=True), args.persistent_steps),
            ("in-process sim (floor)", in_process, args.persistent_steps),
        ]
        for name, factory, steps in runs:
            measure(factory(), min(20, steps))  # warm-up: page cache, imports
            results[name] = measure(factory(), steps)
        paced_steps = int(args.paced_seconds * TARGET_HZ)
        paced = measure(persistent(root, camera=False), paced_steps, paced_hz=TARGET_HZ)

    base = results["per-call bash"]
    print("subprocess connector: one step = observe (14-D state) + apply (14-D action), unpaced")
    print(f"{'mode':34s} {'steps/s':>9s} {'x base':>8s} {'mean ms':>8s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'overhead x base':>16s}")
    for name, r in results.items():
        print(f"{name:34s} {r['hz']:9.1f} {r['hz'] / base['hz']:8.2f} {r['mean_ms']:8.3f} "
              f"{r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['mean_ms'] / base['mean_ms']:16.4f}")
    print("(baseline 'base' = per-call bash, measured in this run; overhead = mean step time)")
    print()
    unpaced = results["persistent sim_arm"]
    ok_unpaced = unpaced["hz"] >= TARGET_HZ
    ok_paced = paced["misses"] <= 0.01 * paced_steps
    print(f"paced {TARGET_HZ:.0f} Hz for {args.paced_seconds:g} s, persistent sim_arm: "
          f"{paced['misses']}/{paced_steps} deadline misses, step p99 {paced['p99_ms']:.3f} ms "
          f"({paced['p99_ms'] / (1e3 / TARGET_HZ):.3f} of the {1e3 / TARGET_HZ:.0f} ms period)")
    print(f"target persistent >= {TARGET_HZ:.0f} Hz with 14-D state: unpaced {unpaced['hz']:.0f} Hz "
          f"({unpaced['hz'] / TARGET_HZ:.1f}x target) -> {'PASS' if ok_unpaced and ok_paced else 'FAIL'}")
    return 0 if ok_unpaced and ok_paced else 1


if __name__ == "__main__":
    sys.exit(main())

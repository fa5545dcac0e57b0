"""Seam bench: hard switch vs crossfade vs temporal ensembling, side by side in one run.

The real control loop runs in simulated time (reflex/runtime/seam_sim.py: a tracking arm, a
fixed inference latency, a policy whose successive chunks disagree), so the seam figures are
exact and repeatable; the per-step cost of blending is real time (perf_counter around the
schedule's ``action_at``), against the hard switch measured in the same run, interleaved.

Figures (each against the hard switch of the same run):
- max seam jump (largest step discontinuity a switch put into the command) for a policy whose
  chunks alternate by a fixed offset, and one whose chunks get seeded noise: target <= 0.2x
  (a linear crossfade's is the gap x control period / blend_s: 0.1x for 0.2 s at 50 Hz);
- added tracking delay: after the goal steps, how much later the command reaches half the step
  than with a hard switch: target <= blend_s (crossfade);
- per-step blending overhead: p50 of action_at minus the hard switch's: target <= 0.05 ms.

Usage: python bench/seam_bench.py [--steps 3000] [--blend-s 0.2] [--horizon 10] [--ens-horizon 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reflex.hardware.yam_layout import yam_bimanual_layout  # noqa: E402
from reflex.runtime.seam_sim import DisagreeingPolicy, SimClock, run_simulated  # noqa: E402

LAYOUT = yam_bimanual_layout()
RATE = 50.0
LATENCY = 0.03


def modes(args: argparse.Namespace) -> list[tuple[str, dict[str, object]]]:
    return [
        ("none", {"blend": "none", "horizon": args.horizon}),
        ("crossfade", {"blend": "crossfade", "horizon": args.horizon, "blend_s": args.blend_s}),
        ("ensemble", {"blend": "ensemble", "horizon": args.ens_horizon}),
    ]


def seam_jumps(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for policy_name, kw in (("offset", {"offset": 0.02}), ("noise", {"noise": 0.02, "seed": 11})):
        for name, settings in modes(args):
            run = run_simulated(DisagreeingPolicy(LAYOUT, **kw), steps=args.steps, rate_hz=RATE,  # type: ignore[arg-type]
                                latency_s=LATENCY, **settings)  # type: ignore[arg-type]
            seams = run.report.seams
            out.setdefault(policy_name, {})[name] = seams["jump"]["max"]
            out[policy_name][name + ".gap"] = seams["gap"]["max"]
            out[policy_name][name + ".switches"] = seams["switches"]
            out[policy_name][name + ".jerk"] = seams["jerkP99"]
    return out


def tracking_delay(args: argparse.Namespace) -> dict[str, float]:
    """Seconds from the goal's step until the command is half-way there (joint 0)."""
    step_at = SimClock().t + 2.0
    size = 0.2
    out = {}
    for name, settings in modes(args):
        policy = DisagreeingPolicy(LAYOUT, step_at=step_at, step_size=size)
        run = run_simulated(policy, steps=int(4 * RATE), rate_hz=RATE, latency_s=LATENCY, max_delta=1.0,
                            **settings)  # type: ignore[arg-type]
        times = np.array(run.arm.times)
        moved = np.array(run.arm.commands)[:, 0] - policy.reference(times)[:, 0]
        reached = np.flatnonzero(moved >= size / 2)
        out[name] = float(times[reached[0]] - step_at) if reached.size else float("inf")
    return out


def overhead(args: argparse.Namespace) -> dict[str, list[float]]:
    """p50 ms per tick of action_at, per mode, over interleaved repeats."""
    p50s: dict[str, list[float]] = {name: [] for name, _ in modes(args)}
    for _ in range(args.repeats):
        for name, settings in modes(args):
            run = run_simulated(DisagreeingPolicy(LAYOUT, noise=0.02), steps=args.steps, rate_hz=RATE,
                                latency_s=LATENCY, **settings)  # type: ignore[arg-type]
            p50s[name].append(float(np.percentile(run.chunk_step_ms, 50)))
    return p50s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--blend-s", type=float, default=0.2)
    parser.add_argument("--horizon", type=int, default=10, help="none/crossfade: actions per chunk")
    parser.add_argument("--ens-horizon", type=int, default=5, help="ensemble: actions per chunk")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ok = True
    print(f"seam bench: {RATE:g} Hz control, chunks of 50 x 20 ms, latency {LATENCY * 1e3:g} ms (simulated), "
          f"horizon {args.horizon} (ensemble {args.ens_horizon}), blend_s {args.blend_s}")

    jumps = seam_jumps(args)
    print("\nmax seam jump (rad), ratio vs hard switch [target <= 0.2]:")
    for policy_name, row in jumps.items():
        hard = row["none"]
        print(f"  {policy_name:<7} hard {hard:.5f} (gap {row['none.gap']:.5f}, {row['none.switches']:.0f} switches, "
              f"jerk p99 {row['none.jerk']:.1f}/s^3)")
        for name in ("crossfade", "ensemble"):
            ratio = row[name] / hard
            ok &= ratio <= 0.2
            print(f"          {name:<9} {row[name]:.5f} = {ratio:.3f}x  (gap {row[name + '.gap']:.5f}, "
                  f"{row[name + '.switches']:.0f} switches, jerk p99 {row[name + '.jerk']:.1f}/s^3)  "
                  f"{'PASS' if ratio <= 0.2 else 'FAIL'}")

    delay = tracking_delay(args)
    print(f"\ntracking delay to half of a 0.2 rad goal step (s), added vs hard switch [crossfade target <= "
          f"blend_s = {args.blend_s}]:")
    print(f"  hard      {delay['none']:.3f}")
    for name in ("crossfade", "ensemble"):
        added = delay[name] - delay["none"]
        verdict = ("PASS" if added <= args.blend_s + 1e-9 else "FAIL") if name == "crossfade" else "(reported)"
        ok &= name != "crossfade" or added <= args.blend_s + 1e-9
        print(f"  {name:<9} {delay[name]:.3f}  added {added:+.3f}  {verdict}")

    p50s = overhead(args)
    base = statistics.median(p50s["none"])
    print(f"\nper-step schedule cost, p50 of action_at (ms), median of {args.repeats} interleaved runs of "
          f"{args.steps} steps [overhead target <= 0.05 ms]:")
    print(f"  hard      {base:.4f}")
    for name in ("crossfade", "ensemble"):
        value = statistics.median(p50s[name])
        added = value - base
        ok &= added <= 0.05
        print(f"  {name:<9} {value:.4f}  = {value / base:.2f}x, overhead {added:+.4f}  "
              f"{'PASS' if added <= 0.05 else 'FAIL'}")
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

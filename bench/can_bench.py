"""CAN bus benchmark: two YAM arms x 7 simulated Damiao motors, 1 Mbit/s wire timing on.

Both arms run at once (one bus and one driver thread each, as in a session), in control mode
(MIT frames to enabled motors, feedback back), free-running as fast as the bus allows. Measured
in the same run, each strategy against the other:

- ``sequential``: the naive cycle, send one frame, wait for its reply, next motor (i2rt's way);
- ``pipelined``: send to all seven motors, then collect the replies as they come (reflex).

Prints per arm: sustained cycle rate, missed-reply rate (motor-cycles without a reply after
retries), retries, cycle time p50/p99/max, and the ratios pipelined / sequential and rate /
wire limit (7 requests + 7 replies x 130 bits at 1 Mbit/s = 549 Hz). Then the same at a fixed
400 Hz target, the rate a session would configure. Reference, not measured here: i2rt on a real
arm runs about 250 Hz.

Usage: python bench/can_bench.py [--seconds 5] [--latency-us 100] [--jitter-us 200]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import numpy as np

from reflex.can.bus import BITS_PER_FRAME, bus_load, open_bus
from reflex.can.chain import ChainMotor, ChainTiming, JointControl, MotorChain
from reflex.can.motors import motor_type
from reflex.can.sim.bus import SimMotorBus, WireTiming
from reflex.hardware.yam.arm import ARM_KD, ARM_KP, ARM_MOTOR_TYPES
from reflex.hardware.yam.sim import yam_sim_motors

TYPES = [*ARM_MOTOR_TYPES, "DM4310"]
CONTROLS = [JointControl(kp=k, kd=d) for k, d in zip(ARM_KP["yam"], ARM_KD, strict=True)]
CONTROLS.append(JointControl(kp=20.0, kd=0.5))
WIRE_LIMIT_HZ = 1e6 / (14 * BITS_PER_FRAME)


def run(strategy: str, rate_hz: float, seconds: float, timing: WireTiming, tag: str) -> dict[str, dict[str, Any]]:
    sims, chains = [], []
    for side in ("left", "right"):
        channel = f"sim:bench-{tag}-{side}"
        sims.append(SimMotorBus(channel, yam_sim_motors("linear_4310", seed=1), timing=timing).start())
        motors = [ChainMotor(f"{side} joint{i + 1}", i + 1, motor_type(t)) for i, t in enumerate(TYPES)]
        chain = MotorChain(
            open_bus(channel),
            motors,
            name=side,
            rate_hz=rate_hz,
            timing=ChainTiming(reply_timeout_s=0.002, max_retries=1, reply_budget_s=math.inf),
            strategy=strategy,  # type: ignore[arg-type]
        )
        chain.refresh()
        chain.enable_all()
        chains.append(chain)
    try:
        for chain in chains:
            chain.start()
            chain.start_control(CONTROLS, interp_s=0.02)
        time.sleep(0.3)  # warm up, then measure a clean window
        before = [(c.stats.cycles, c.stats.missed, c.stats.retries, c.stats.late, time.monotonic()) for c in chains]
        for c in chains:
            c.stats.cycle_times_s.clear()
        time.sleep(seconds)
        out = {}
        for chain, (cycles0, missed0, retries0, late0, t0) in zip(chains, before, strict=True):
            st = chain.stats
            elapsed = time.monotonic() - t0
            cycles = st.cycles - cycles0
            times = np.array(list(st.cycle_times_s)) * 1e3
            out[chain.name] = {
                "rate_hz": cycles / elapsed,
                "missed_rate": (st.missed - missed0) / max(cycles * 7, 1),
                "retries": st.retries - retries0,
                "late": st.late - late0,
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
                "max_ms": float(times.max()),
                "fault": chain.fault,
            }
    finally:
        for chain in chains:
            chain.stop_thread()
            chain.disable_all()
            chain.close()
        for sim in sims:
            sim.stop()
    return out


def show(title: str, res: dict[str, dict[str, Any]]) -> None:
    print(f"  {title}")
    for side, r in res.items():
        print(
            f"    {side:<5} {r['rate_hz']:7.1f} Hz  missed {r['missed_rate'] * 100:6.3f} %  retries {r['retries']:5d}"
            f"  cycle p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} / max {r['max_ms']:.2f} ms"
            f"  bus load {bus_load(r['rate_hz'], 14) * 100:4.1f} %" + (f"  FAULT {r['fault']}" if r["fault"] else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--latency-us", type=float, default=100.0)
    parser.add_argument("--jitter-us", type=float, default=200.0)
    args = parser.parse_args()
    timing = WireTiming(latency_s=args.latency_us * 1e-6, jitter_s=args.jitter_us * 1e-6)
    print(
        f"can_bench: 2 arms x 7 simulated motors, wire timing on ({timing.frame_s * 1e3:.2f} ms/frame, "
        f"reply latency {args.latency_us:.0f} + U(0, {args.jitter_us:.0f}) us), {args.seconds:g} s per run"
    )
    free = {s: run(s, 0.0, args.seconds, timing, f"free-{s}") for s in ("sequential", "pipelined")}
    print("free-running (as fast as the bus allows):")
    for s in ("sequential", "pipelined"):
        show(s, free[s])
    print("ratios (same run):")
    for side in ("left", "right"):
        seq, pipe = free["sequential"][side]["rate_hz"], free["pipelined"][side]["rate_hz"]
        print(
            f"    {side:<5} pipelined / sequential = {pipe / seq:.2f}x   pipelined / wire limit "
            f"({WIRE_LIMIT_HZ:.0f} Hz) = {pipe / WIRE_LIMIT_HZ:.2f}   "
            f"sequential / wire limit = {seq / WIRE_LIMIT_HZ:.2f}"
        )
    fixed = {s: run(s, 400.0, args.seconds, timing, f"400-{s}") for s in ("sequential", "pipelined")}
    print("fixed target 400 Hz:")
    for s in ("sequential", "pipelined"):
        show(s, fixed[s])
    pipe_min = min(r["rate_hz"] for r in free["pipelined"].values())
    print(
        f"summary: pipelined {pipe_min:.0f} Hz per arm (slowest arm), target >= 400 Hz: "
        f"{'met' if pipe_min >= 400 else 'NOT met'}; sequential "
        f"{statistics.mean(r['rate_hz'] for r in free['sequential'].values()):.0f} Hz"
    )


if __name__ == "__main__":
    main()

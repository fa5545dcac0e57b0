"""Motion safety details shown frame by frame on the simulated bus (issue: motion safety, Build
items 1, 2, 4 and 6): the hold stiffness and the phases of a stop as configured, a further signal
cutting a stop short to the disable, homing's time bound, the watchdog's bounds, the gripper's
configurable speed. Orders and counts of captured frames, never sleeps."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_yam_motion_safety import (
    NOMINAL_KP,
    POSE,
    TYPES,
    Buses,
    Rig,
    at_most_the_frame_in_flight,
    config,
    feedback,
    first_stop_frame,
    hold_for,
    mit,
    note_faults,
    robot,
)

from reflex.can.capture import classify
from reflex.can.chain import StopPlan
from reflex.can.codec import unpack_mit
from reflex.hardware.yam.config import YamBimanualConfig
from reflex.hardware.yam.robot import HardwareFault

KP_CODE = 500.0 / 4095  # one kp code


def stop_phases(frames: list, esc: int) -> list[str]:
    """The phases joint ``esc`` went through, in order, from its commands: run (nominal kp),
    hold (reduced kp), damp (kp 0, kd > 0), disable."""
    phases: list[str] = []
    for f in frames:
        if f.arbitration_id != esc:
            continue
        kind = classify(esc, f.data)
        if kind == "mit":
            cmd = unpack_mit(f.data, TYPES[esc - 1])
            phase = "run" if cmd.kp > NOMINAL_KP[esc - 1] - 0.2 else "hold" if cmd.kp > KP_CODE else "damp"
        elif kind == "disable":
            phase = "disable"
        else:
            continue
        if not phases or phases[-1] != phase:
            phases.append(phase)
    return phases


def test_hold_uses_the_configured_stiffness_then_damps_then_disables() -> None:
    plan = StopPlan(mode="hold", hold_s=0.2, hold_stiffness=0.25, damp_s=0.2)
    rig = Rig("sim:sp-hold", POSE, plan)
    try:
        rig.control()
        rig.wait_cycles(30)
        rig.chain.request_stop("test")
        assert rig.chain.wait_stopped(10)
    finally:
        frames = rig.close()
    for esc in range(1, 7):
        assert stop_phases(frames, esc) == ["run", "hold", "damp", "disable"], esc
        held = [unpack_mit(f.data, TYPES[esc - 1]) for f in frames
                if f.arbitration_id == esc and classify(esc, f.data) == "mit"]
        hold_kp = {round(c.kp, 1) for c in held if KP_CODE < c.kp < NOMINAL_KP[esc - 1] - 0.2}
        assert hold_kp and all(abs(k - 0.25 * NOMINAL_KP[esc - 1]) <= KP_CODE for k in hold_kp), (esc, hold_kp)
        damp = [c for c in held if c.kp <= KP_CODE]
        assert damp and all(c.kd > 0 for c in damp)


def test_a_further_signal_during_the_stop_skips_to_the_disable() -> None:
    plan = StopPlan(mode="hold", hold_s=30.0, damp_s=30.0)  # would hold for a minute
    rig = Rig("sim:sp-cut", POSE, plan)
    signals = [0]
    rig.chain.interrupts = lambda: signals[0]
    try:
        rig.control()
        rig.wait_cycles(30)
        rig.chain.request_stop("test")
        rig.wait_cycles(20)  # holding
        assert rig.chain.mode == "stopping"
        cycle = rig.chain.stats.cycles
        signals[0] += 1  # the second Ctrl-C
        assert rig.chain.wait_stopped(10)
        cycles_to_disable = rig.chain.stats.cycles - cycle
    finally:
        frames = rig.close()
    assert cycles_to_disable <= 2  # the cycle that saw the signal disabled (counted when it ended)
    for esc in range(1, 8):
        phases = stop_phases(frames, esc)
        assert phases[-1] == "disable" and "damp" not in phases, (esc, phases)


def test_homing_is_bounded_in_time(tmp_path: Path) -> None:
    name = "sp-home-bound"
    buses = Buses(name)
    home = [0.6, 0.6, 0.6, 0, 0, 0, 0.5] * 2
    hw = robot(config(name, home_pose=home, home_speed=0.05, home_timeout_s=0.5), tmp_path)
    try:
        hw.connect()
        hw.enable()
        with pytest.raises(HardwareFault, match=r"homing took longer than home_timeout_s = 0.5 s"):
            hw.go_home()  # 0.6 rad at 0.05 rad/s would take 12 s
        hw.safe_stop("homing timed out")
    finally:
        hw.close()
        frames = buses.close()
    joint1 = [p for _, p, kp in mit(frames["left"], 1) if kp > NOMINAL_KP[0] - 0.2]
    assert joint1[-1] < 0.6 - 0.3, "homing stopped far from home"
    for esc in range(1, 8):
        assert stop_phases(frames["left"], esc)[-1] == "disable"


def test_watchdog_default_and_bounds() -> None:
    arms = {s: {"channel": f"sim:sp-wd-{s}"} for s in ("left", "right")}
    assert YamBimanualConfig.model_validate(arms).watchdog_ms == 400
    assert YamBimanualConfig.model_validate({**arms, "watchdog_ms": 1000}).watchdog_ms == 1000
    for bad in (1001, 0, 20):
        with pytest.raises(ValidationError, match="watchdog_ms"):
            YamBimanualConfig.model_validate({**arms, "watchdog_ms": bad})


@pytest.mark.parametrize("speed", [2.0, 8.0])
def test_gripper_speed_is_configurable_on_the_wire(speed: float, tmp_path: Path) -> None:
    name = f"sp-grip-{speed:g}"
    buses = Buses(name)
    hw = robot(config(name, gripper_max_speed=speed), tmp_path)
    try:
        hw.connect()
        hw.enable()
        target = hw.read_state().position
        target[6] = 0.1 if target[6] > 0.5 else 0.9
        for step in range(30):
            hw.read_state()
            hw.apply(target, step)
            time.sleep(1 / 30)
    finally:
        hw.close()
        frames = buses.close()
    gripper = [p for _, p, kp in mit(frames["left"], 7) if kp > NOMINAL_KP[6] - 0.2]
    steps = [abs(b - a) for a, b in itertools.pairwise(gripper)]
    code = 2 * TYPES[6].pmax / 65535  # one position code
    assert max(steps) <= speed / 250 + 2 * code  # one bus period at the configured speed
    assert max(steps) >= 0.5 * speed / 250, "the gripper did move at about that speed"


def test_lost_replies_past_the_budget_stop_both_arms_on_the_next_bus_cycle(tmp_path: Path) -> None:
    """Right joint4 keeps hearing and following its commands, but its replies are lost: past the
    reply budget (a time on the chain's own clock), the right chain reports the fault and both
    arms stop on their next bus cycle (counted in frames, not wall-clock time: a loaded host
    stretches cycles)."""
    name = "sp-lost"
    buses = Buses(name)
    # the longest motor watchdog: a loaded host that starves the bus thread must not fire it
    # first (this test is about the reply budget, which is a time on the chain's own clock)
    hw = robot(config(name, watchdog_ms=1000), tmp_path)
    found = note_faults(hw)  # when a chain reported the fault
    try:
        hw.connect()
        hw.enable()
        hold_for(hw, 0.2)
        buses.sims["right"].drop_replies(4, 10**6)
        with pytest.raises(HardwareFault, match=r"right joint4 .*no reply for \d+ ms \(budget 17 ms\)"):
            hold_for(hw, 5.0)
        with pytest.raises(HardwareFault, match=r"right joint4 .* did not confirm the disable"):
            hw.safe_stop("test: lost replies")
    finally:
        hw.close()
        frames = buses.close()
    t_last = feedback(frames["right"], 4)[-1][0]  # the last reply that got through
    assert found and found[0] > t_last, "the fault is reported after the replies stopped"
    for side in ("left", "right"):
        first_stop_frame(frames[side], after=found[0])
        at_most_the_frame_in_flight(frames[side], found[0], side, "the fault")
    assert not buses.sims["right"].motors[4].enabled, "it heard the disable (only its replies were lost)"


def test_homing_obeys_the_acceleration_limit_on_the_wire(tmp_path: Path) -> None:
    name = "sp-home-accel"
    buses = Buses(name)
    accel = 2.0
    hw = robot(config(name, home_pose=[0.5, 0, 0, 0, 0, 0, 0.5] * 2, home_speed=3.0, max_accel=accel), tmp_path)
    try:
        hw.connect()
        hw.enable()
        hw.go_home()
    finally:
        hw.close()
        frames = buses.close()
    joint1 = [p for _, p, kp in mit(frames["left"], 1) if kp > NOMINAL_KP[0] - 0.2]
    assert joint1[-1] == pytest.approx(0.5, abs=0.05)
    n, period, code = 10, 1 / 250, 25.0 / 65535
    bound = accel * (n * period) ** 2 + 4 * code  # second difference over n bus periods
    worst = max(abs(joint1[k + n] - 2 * joint1[k] + joint1[k - n]) for k in range(n, len(joint1) - n))
    assert worst <= bound, f"{worst} > {bound}"
    assert worst > 0.5 * accel * (n * period) ** 2, "homing did accelerate up to the limit"


def test_ctrl_c_at_the_enable_frame_reports_powered_motors_and_one_safe_stop(tmp_path: Path) -> None:
    """SIGINT while the right arm is being enabled (the left one already is): the motors were
    powered, one safe stop, done, exit 130."""
    import os
    import signal

    from conftest import write_session
    from test_yam_truthful_stops import GRIPPERS, on_motor, session

    from reflex.runtime.session import run_session_file

    def ctrl_c_at_enable(m: object, aid: int, data: bytes, t: float) -> None:
        if aid == 1 and classify(aid, data) == "enable":
            os.kill(os.getpid(), signal.SIGINT)

    name = "sp-enable-sigint"
    buses = Buses(name, on_motor("right", 1, ctrl_c_at_enable))
    cfg = session(name)
    for s in ("left", "right"):
        cfg["hardware"]["config"][s].update(GRIPPERS)
    try:
        result = run_session_file(write_session(tmp_path, cfg)).to_json()
    finally:
        frames = buses.close()
    why = (result["errors"], result["safeStopFailures"])
    assert result["ok"] is False and result["exitCode"] == 130 and result["stopReason"] == "aborted", why
    assert result["motorsPowered"] is True and result["safeStops"] == 1 and not result["safeStopFailures"], why
    assert "SIGINT during hardware.enable, after the first enable frame" in result["errors"], why
    assert "hardware.enable: motors were powered (an enable frame went out); safe-stopped" in result["errors"], why
    for s in ("left", "right"):
        kinds = [classify(f.arbitration_id, f.data) for f in frames[s] if f.arbitration_id < 0x10]
        assert "enable" in kinds and "disable" in kinds, s
        assert all(not m.enabled for m in buses.sims[s].motors.values()), s

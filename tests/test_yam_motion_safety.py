"""Motion safety of the YAM path, shown on the simulated bus with CAN-frame captures (issue:
interruptible homing, a stop that does not drop the arm, a verified watchdog, one-cycle fault
reaction, acceleration limits, no jump at enable).

Times compared here are capture times of frames on the bus, never sleeps."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reflex.can.bus import open_bus
from reflex.can.capture import BusCapture, Captured, classify
from reflex.can.chain import ChainMotor, ChainTiming, JointControl, MotorChain, StopPlan
from reflex.can.codec import decode_feedback, parse_register_message, unpack_mit
from reflex.can.faults import MotorStatus
from reflex.can.motors import motor_type
from reflex.can.registers import RID_TIMEOUT, RegisterCmd, decode_value
from reflex.can.sim.bus import SimMotorBus
from reflex.can.sim.motor import SimMotor
from reflex.config.base import BuildContext
from reflex.errors import EXIT_SETUP, SetupError
from reflex.hardware.yam.arm import ARM_KD, ARM_KP, ARM_MOTOR_TYPES
from reflex.hardware.yam.config import YamBimanualConfig
from reflex.hardware.yam.robot import HardwareFault, YamBimanual
from reflex.hardware.yam.sim import YamOnSimBuses, yam_sim_motors
from reflex.hardware.yam_layout import ARM_LOWER

TYPES = [motor_type(t) for t in (*ARM_MOTOR_TYPES, "DM4310")]
NOMINAL_KP = (*ARM_KP["yam"], 20.0)
RATE_HZ = 30.0
PERIOD = 1 / RATE_HZ
CODE = 25.0 / 65535  # one position code (rad)


def mit(frames: list[Captured], esc: int) -> list[tuple[float, float, float]]:
    """(t, p_des, kp) of every MIT frame to motor ``esc``."""
    out = []
    for f in frames:
        if f.arbitration_id == esc and classify(f.arbitration_id, f.data) == "mit":
            cmd = unpack_mit(f.data, TYPES[esc - 1])
            out.append((f.t, cmd.position, cmd.kp))
    return out


def feedback(frames: list[Captured], esc: int) -> list[tuple[float, float, float]]:
    """(t, position, velocity) of every feedback frame of motor ``esc``."""
    out = []
    for f in frames:
        if f.arbitration_id == esc + 0x10 and classify(f.arbitration_id, f.data) == "feedback":
            fb = decode_feedback(f.data, TYPES[esc - 1])
            out.append((f.t, fb.position, fb.velocity))
    return out


def first_stop_frame(frames: list[Captured], after: float = -math.inf) -> float:
    """Capture time of the first frame of a safe stop: an MIT frame below nominal stiffness."""
    for f in frames:
        esc = f.arbitration_id
        is_mit = esc < 0x10 and classify(esc, f.data) == "mit"
        if is_mit and f.t >= after and unpack_mit(f.data, TYPES[esc - 1]).kp < NOMINAL_KP[esc - 1] - 0.2:
            return f.t
    raise AssertionError("no stop frame on the bus")


def at_most_the_frame_in_flight(frames: list[Captured], after: float, side: str, what: str) -> None:
    """Stopped within one bus cycle of ``after`` (counted, not timed: a loaded host stretches
    cycles): each motor got at most the control frame already in flight, then stop frames."""
    for esc in range(1, 8):
        control = [t for t, _, kp in mit(frames, esc) if t > after and kp > NOMINAL_KP[esc - 1] - 0.2]
        assert len(control) <= 1, f"{side} motor {esc}: {len(control)} control frames after {what}"


def note_faults(hw: YamBimanual) -> list[float]:
    """When a chain reports a fault (then it stops both arms): the list fills as faults come."""
    found: list[float] = []
    report = hw.arms[0].on_fault
    assert report is not None

    def noted(message: str) -> None:
        found.append(time.monotonic())
        report(message)

    for arm in hw.arms:
        arm.on_fault = noted
    return found


def first_kind(frames: list[Captured], kind: str) -> float:
    return next(f.t for f in frames if f.arbitration_id < 0x10 and classify(f.arbitration_id, f.data) == kind)


# ---------------------------------------------------------------------------------- chain level
CONTROLS = [JointControl(kp=k, kd=d, max_speed=1.0) for k, d in zip(ARM_KP["yam"], ARM_KD, strict=True)]
CONTROLS.append(JointControl(kp=20.0, kd=0.5, max_speed=1.0, velocity_feedforward=False, support_on_stop=False))
MOTORS = [ChainMotor(f"arm joint{i + 1}", i + 1, t) for i, t in enumerate(TYPES)]


class Rig:
    """One simulated arm with gravity (default YAM sim), a chain and a capture."""

    def __init__(self, channel: str, initial: list[float], plan: StopPlan) -> None:
        self.sim = SimMotorBus(channel, yam_sim_motors("linear_4310", initial=initial)).start()
        self.capture = BusCapture(channel)
        self.chain = MotorChain(
            open_bus(channel), MOTORS, name="arm", rate_hz=250,
            timing=ChainTiming(reply_timeout_s=0.02, max_retries=2, reply_budget_s=0.05), stop_plan=plan,
        )

    def control(self, controls: list[JointControl] = CONTROLS) -> None:
        self.chain.refresh()
        self.chain.enable_all()
        self.chain.start()
        self.chain.start_control(controls, interp_s=PERIOD)

    def wait_cycles(self, n: int) -> None:
        target = self.chain.stats.cycles + n
        deadline = time.monotonic() + 30
        while self.chain.stats.cycles < target:
            assert time.monotonic() < deadline, "chain stalled"
            time.sleep(0.005)

    def close(self) -> list[Captured]:
        self.chain.close()
        self.sim.stop()
        return self.capture.stop()


POSE = [0.0, 0.9, 0.8, 0.0, 0.0, 0.0, -3.0]  # shoulder and elbow well loaded by gravity


@pytest.mark.parametrize("mode", ["hold", "damp", "disable"])
def test_stop_with_gravity_holds_in_hold_and_damp_and_drops_in_disable(mode: str, request: Any) -> None:
    plan = StopPlan(mode=mode, hold_s=0.4, damp_s=0.6, ramp_s=0.1)  # type: ignore[arg-type]
    rig = Rig(f"sim:ms-grav-{mode}", POSE, plan)
    try:
        rig.control()
        rig.wait_cycles(150)  # at rest, holding against gravity
        rig.chain.request_stop("test")
        assert rig.chain.wait_stopped(10)
        rig.wait_cycles(100)  # polling on after the disable: the arm's fate shows in the replies
    finally:
        frames = rig.close()
    t_stop = first_stop_frame(frames)
    t_disable = first_kind(frames, "disable")
    during = [v for esc in range(1, 8) for t, _, v in feedback(frames, esc) if t_stop <= t < t_disable]
    shoulder = feedback(frames, 2)
    assert len(during) > 20
    if mode in ("hold", "damp"):
        assert max(abs(v) for v in during) < 0.5, f"{mode}: a joint moved at {max(abs(v) for v in during):.2f} rad/s"
        held = [p for t, p, _ in shoulder if t_stop <= t < t_disable]
        assert max(held) - min(held) < 0.05  # the shoulder stayed where it was
    else:
        after = [(p, v) for t, p, v in shoulder if t >= t_stop]
        assert max(abs(v) for _, v in after) > 2.0, "free fall expected once the torque is cut"
        assert after[0][0] - after[-1][0] > 0.5, "the shoulder fell towards its stop"


def test_acceleration_stays_within_the_limit_on_the_wire_frame_by_frame() -> None:
    def run(accel: float) -> list[tuple[float, float, float]]:
        controls = [JointControl(kp=c.kp, kd=c.kd, max_speed=1.0, max_accel=accel) for c in CONTROLS[:6]]
        rig = Rig(f"sim:ms-accel-{accel}", [0.0, 0.3, 0.3, 0.0, 0.0, 0.0, -3.0], StopPlan())
        try:
            rig.control([*controls, CONTROLS[6]])
            rig.wait_cycles(10)
            target = rig.chain.measured()
            target[0] += 0.3
            rig.chain.set_targets(target)
            rig.wait_cycles(200)
            target[0] -= 0.3
            rig.chain.set_targets(target)
            rig.wait_cycles(200)
        finally:
            frames = rig.close()
        return mit(frames, 1)

    # shaping runs in nominal bus periods (4 ms): over n frames the position's second difference is
    # at most accel * (n T)^2, plus quantization (4 codes)
    n, period = 10, 1 / 250
    bound = 5.0 * (n * period) ** 2 + 4 * CODE

    def worst(frames: list[tuple[float, float, float]]) -> float:
        p = [x[1] for x in frames]
        return max(abs(p[k + n] - 2 * p[k] + p[k - n]) for k in range(n, len(p) - n))

    limited = run(5.0)
    assert len(limited) > 300 and worst(limited) <= bound
    assert abs(limited[-1][1] - limited[0][1]) < 4 * CODE  # back where it started, no overshoot left
    assert worst(run(math.inf)) > bound  # without the limit the same check fails: it can fail


# ---------------------------------------------------------------------------------- both arms
def config(name: str, **kw: Any) -> YamBimanualConfig:
    arms = {
        side: {"channel": f"sim:{name}-{side}", "gripper": "linear_4310", "gripper_limits": [0.0, -6.57]}
        for side in ("left", "right")
    }
    return YamBimanualConfig.model_validate({**arms, "sim": {"seed": 1}, **kw})


class Buses:
    def __init__(self, name: str, shape: Callable[[str, list[SimMotor]], None] | None = None) -> None:
        self.sims: dict[str, SimMotorBus] = {}
        self.captures: dict[str, BusCapture] = {}
        for side in ("left", "right"):
            channel = f"sim:{name}-{side}"
            motors = yam_sim_motors("linear_4310", seed=5)
            if shape is not None:
                shape(side, motors)
            self.captures[side] = BusCapture(channel)
            self.sims[side] = SimMotorBus(channel, motors).start()

    def close(self) -> dict[str, list[Captured]]:
        for sim in self.sims.values():
            sim.stop()
        return {side: cap.stop() for side, cap in self.captures.items()}


def robot(cfg: YamBimanualConfig, tmp_path: Path, signals: Callable[[], int] | None = None) -> YamBimanual:
    ctx = BuildContext(config_dir=tmp_path, mode="apply_actions", control_rate_hz=RATE_HZ, signals=signals)
    return YamOnSimBuses(cfg, ctx)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return "ms-" + request.node.name.replace("_", "")[-24:]


def hold_for(hw: YamBimanual, seconds: float) -> None:
    """Act like the runner: read and re-send the measured pose every control period."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        q = hw.read_state().position
        hw.apply(q, 0)
        time.sleep(PERIOD)


def test_silent_motor_first_stop_frame_on_both_arms_within_one_control_period(name: str, tmp_path: Path) -> None:
    buses = Buses(name)
    hw = robot(config(name), tmp_path)
    try:
        hw.connect()
        hw.enable()
        hold_for(hw, 0.2)
        buses.sims["right"].set_silent(4)
        with pytest.raises(HardwareFault, match=r"right joint4 .*no reply for \d+ ms \(budget 17 ms\)"):
            hold_for(hw, 5.0)
        with pytest.raises(HardwareFault, match=r"right joint4 .* did not confirm the disable"):
            hw.safe_stop("test: silent motor")  # left to its watchdog (tests/test_yam_truthful_stops.py)
    finally:
        hw.close()
        frames = buses.close()
    t_last = feedback(frames["right"], 4)[-1][0]  # the silent motor's last answer
    t_found = first_stop_frame(frames["right"])  # the right arm stops on the cycle that finds it
    assert t_found > t_last
    # within one bus cycle (not a wall-clock time: a loaded host stretches cycles): after the
    # right arm's first stop frame, each arm sends at most the rest of the cycle in flight
    for side in ("left", "right"):
        assert first_stop_frame(frames[side], after=t_found) > t_last
        at_most_the_frame_in_flight(frames[side], t_found, side, "the stop began")


def test_bus_off_on_one_arm_stops_the_other_and_names_the_watchdog(name: str, tmp_path: Path) -> None:
    buses = Buses(name)
    hw = robot(config(name), tmp_path)
    found = note_faults(hw)  # when the left chain reported the fault
    try:
        hw.connect()
        hw.enable()
        hold_for(hw, 0.2)
        buses.sims["left"].set_bus_off()
        with pytest.raises(HardwareFault, match="left arm: bus error"):
            hold_for(hw, 5.0)
        with pytest.raises(HardwareFault) as failed:
            hw.safe_stop("test: bus-off")
        message = str(failed.value)
        assert "left arm (sim:" in message and "(bus error, no frame reaches its motors" in message
        assert "left to their motor watchdog (400 ms), which" in message
        assert " UTC, 400 ms after the last frame they acknowledged (at the latest " in message
        left_status = buses.sims["left"].with_motors(lambda ms: [m.status for m in ms.values()])
    finally:
        hw.close()
        frames = buses.close()
    t_last_left = max(f.t for f in frames["left"] if f.arbitration_id < 0x10)  # the last frame that left
    assert found and found[0] > t_last_left  # the left chain found the bus off on a later cycle
    first_stop_frame(frames["right"], after=t_last_left)
    # the right arm stops within one bus cycle of the fault (not a wall-clock time: a loaded host
    # stretches cycles): after it, each right motor gets at most the control frame in flight
    at_most_the_frame_in_flight(frames["right"], found[0], "right", "the fault")
    assert all(s == MotorStatus.LOSS_OF_COMMUNICATION for s in left_status)  # the watchdog took over


def test_watchdog_is_rewritten_from_3_s_and_a_failed_read_back_refuses_enable(name: str, tmp_path: Path) -> None:
    def three_seconds(side: str, motors: list[SimMotor]) -> None:
        for m in motors:
            m.registers[RID_TIMEOUT] = 60000  # 3 s, as a previous tool may have left it

    buses = Buses(name, three_seconds)
    hw = robot(config(name), tmp_path)
    try:
        hw.connect()
        hw.enable()
        assert all(m.registers[RID_TIMEOUT] == 8000 for s in buses.sims.values() for m in s.motors.values())
    finally:
        hw.close()
        frames = buses.close()
    for side in ("left", "right"):
        writes = []
        for f in frames[side]:
            msg = parse_register_message(f.data) if f.arbitration_id == 0x7FF else None
            if msg is not None and msg.cmd is RegisterCmd.WRITE and msg.rid == RID_TIMEOUT:
                writes.append((f.t, decode_value(RID_TIMEOUT, msg.value)))
        assert [v for _, v in writes] == [8000] * 7
        assert max(t for t, _ in writes) < first_kind(frames[side], "enable")

    def stuck(side: str, motors: list[SimMotor]) -> None:
        three_seconds(side, motors)
        if side == "left":
            motors[2].ignore_writes.add(RID_TIMEOUT)  # echoes the write, keeps 3 s

    buses = Buses(name + "b", stuck)
    hw = robot(config(name + "b"), tmp_path)
    try:
        hw.connect()
        with pytest.raises(SetupError) as refused:
            hw.enable()
    finally:
        hw.close()
        frames = buses.close()
    assert refused.value.exit_code == EXIT_SETUP == 3
    assert "left joint3" in str(refused.value) and "(motor 0x03)" in str(refused.value)
    assert "watchdog reads back 60000 (3000 ms) after writing 8000 (400 ms): refusing to enable" in str(refused.value)
    for side in ("left", "right"):
        assert "enable" not in [classify(f.arbitration_id, f.data) for f in frames[side] if f.arbitration_id < 0x10]


def test_enable_next_to_a_limit_slews_in_without_a_jump_and_further_out_is_refused(name: str, tmp_path: Path) -> None:
    def near(side: str, motors: list[SimMotor]) -> None:
        if side == "left":
            motors[0].q = ARM_LOWER[0] - 0.015  # within the 0.02 rad bring-up margin

    buses = Buses(name, near)
    hw = robot(config(name), tmp_path)
    try:
        hw.connect()
        hw.enable()
        target = hw.read_state().position
        target[0] = ARM_LOWER[0] + 0.05
        for step in range(20):
            hw.read_state()
            hw.apply(target, step)
            time.sleep(PERIOD)
        reached = hw.read_state().position[0]
    finally:
        hw.close()
        frames = buses.close()
    joint1 = [p for _, p, kp in mit(frames["left"], 1) if kp > NOMINAL_KP[0] - 0.2]
    assert joint1[0] == pytest.approx(ARM_LOWER[0] - 0.015, abs=2e-3)  # starts where the joint is
    steps = np.diff(joint1)
    assert np.all(steps >= -CODE), "moved further out"
    assert np.max(np.abs(steps)) <= 3.0 / 250 + CODE, "a jump"
    assert reached == pytest.approx(ARM_LOWER[0] + 0.05, abs=0.02)

    def far(side: str, motors: list[SimMotor]) -> None:
        if side == "left":
            motors[0].q = ARM_LOWER[0] - 0.086

    buses = Buses(name + "b", far)
    hw = robot(config(name + "b"), tmp_path)
    try:
        hw.connect()
        with pytest.raises(SetupError, match=r"left joint1 .*\(motor 0x01\): at -2.704 rad, 0.086 rad below its lower"):
            hw.enable()
    finally:
        hw.close()
        frames = buses.close()
    assert "enable" not in [classify(f.arbitration_id, f.data) for f in frames["left"] if f.arbitration_id < 0x10]


def test_second_ctrl_c_stops_homing_within_one_control_cycle(name: str, tmp_path: Path) -> None:
    signals = [1]  # the first Ctrl-C ended the loop; homing runs on the clean stop
    buses = Buses(name)
    hw = robot(config(name, home_pose=[0.6, 0.6, 0.6, 0, 0, 0, 0.5] * 2, home_speed=0.5), tmp_path, lambda: signals[0])
    t_signal: list[float] = []

    def second_ctrl_c() -> None:
        cap = buses.captures["left"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until homing is well under way
            recent = [f for f in list(cap.frames)[-100:] if f.arbitration_id == 1 and classify(1, f.data) == "mit"]
            if recent and unpack_mit(recent[-1].data, TYPES[0]).position > 0.15:
                break
            time.sleep(0.01)
        t_signal.append(time.monotonic())
        signals[0] += 1

    try:
        hw.connect()
        hw.enable()
        trigger = threading.Thread(target=second_ctrl_c, daemon=True)
        trigger.start()
        with pytest.raises(HardwareFault, match=r"homing stopped .*interrupted"):
            hw.go_home()
        trigger.join(5)
        hw.safe_stop("home interrupted")
    finally:
        hw.close()
        frames = buses.close()
    (t_sig,) = t_signal
    for side in ("left", "right"):
        homing_after = [t for t, _, kp in mit(frames[side], 1) if t > t_sig and kp > NOMINAL_KP[0] - 0.2]
        # within one bus cycle of the signal (at most the frame in flight), then the stop frames
        assert len(homing_after) <= 1, f"{side}: {len(homing_after)} homing frames after the signal"
        first_stop_frame(frames[side], after=t_sig)
        moved = [p for t, p, kp in mit(frames[side], 1) if kp > NOMINAL_KP[0] - 0.2]
        assert moved[-1] < 0.6 - 0.05, "homing was still far from home: the stop cut it short"



# ---------------------------------------------------------------------------------- session level
def test_ctrl_c_during_gripper_calibration_reports_powered_motors_and_one_safe_stop(tmp_path: Path) -> None:
    """A Ctrl-C after the first enable frame (here: during gripper calibration) is reported as
    what it is: motors were live, one safe stop, not ok, exit 130. Before any enable frame it is
    an abort that powered nothing."""
    import os
    import signal

    from conftest import write_session

    from reflex.runtime.session import run_session_file

    name = "ms-calib"
    buses = Buses(name)
    session = {
        "mode": "apply_actions",
        "control_rate_hz": RATE_HZ,
        "max_steps": 100,
        "target": {"kind": "local", "export": "builtin:demo_state_only"},
        "hardware": {"kind": "yam_bimanual", "config": {
            "left": {"channel": f"sim:{name}-left"}, "right": {"channel": f"sim:{name}-right"},
        }},
        "record": {"enabled": False},
    }
    t_signal: list[float] = []

    def ctrl_c_when_calibrating() -> None:
        cap = buses.captures["left"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recent = [f for f in list(cap.frames)[-60:] if f.arbitration_id == 7 and classify(7, f.data) == "mit"]
            last = unpack_mit(recent[-1].data, TYPES[6]) if recent else None
            if last is not None and last.kp == 0 and abs(last.torque) > 0.1:
                break  # the gripper is being pushed against its stop (0.5 Nm; not the torque-mode zero)
            time.sleep(0.01)
        t_signal.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=ctrl_c_when_calibrating, daemon=True)
    watcher.start()
    try:
        result = run_session_file(write_session(tmp_path, session)).to_json()
    finally:
        watcher.join(5)
        frames = buses.close()
    assert t_signal, "calibration never started"
    assert result["ok"] is False and result["exitCode"] == 130 and result["stopReason"] == "aborted"
    assert result["safeStops"] == 1 and not result["safeStopFailures"]
    assert any("SIGINT during hardware.enable, after the first enable frame" in e for e in result["errors"])
    assert "hardware.enable: motors were powered (an enable frame went out); safe-stopped" in result["errors"]
    assert result["motorsPowered"] is True and not result["leftToWatchdog"]
    assert not any("before powering anything" in e for e in result["errors"])
    for side in ("left", "right"):
        kinds = [classify(f.arbitration_id, f.data) for f in frames[side] if f.arbitration_id < 0x10]
        assert kinds.count("enable") == 7 and "disable" in kinds
        assert all(not m.enabled for m in buses.sims[side].motors.values())
        # the stop ended the calibration: a stop frame after the signal, no calibration push after
        # it (ordered by frames, not a wall-clock window: a loaded host delays the signal handler)
        t_stop = first_stop_frame(frames[side], after=t_signal[0])
        pushes = [f.t for f in frames[side] if f.arbitration_id == 7 and classify(7, f.data) == "mit"
                  and (c := unpack_mit(f.data, TYPES[6])).kp == 0 and abs(c.torque) > 0.1]  # 0.5 Nm pushes
        assert pushes or side == "right", "the watcher saw the left gripper pushed"  # right's may not have begun
        assert not [t for t in pushes if t > t_stop], f"{side}: the gripper was pushed after the stop began"


def test_second_ctrl_c_during_homing_in_a_session_is_reported_stage_accurately(tmp_path: Path) -> None:
    """First Ctrl-C: clean stop, homing starts. Second Ctrl-C while homing: the arms stop on
    their own next bus cycle, the result says so (forced exit, one safe stop, the homing named)."""
    import os
    import signal

    from conftest import write_session

    from reflex.runtime.session import run_session_file

    name = "ms-home2"
    buses = Buses(name)
    home = [-1.0, 0.3, 0.3, 0.0, 0.0, 0.0, 1.0]
    session = {
        "mode": "apply_actions",
        "control_rate_hz": RATE_HZ,
        "max_steps": 0,
        "target": {"kind": "local", "export": "builtin:demo_state_only"},
        "hardware": {"kind": "yam_bimanual", "config": {
            "left": {"channel": f"sim:{name}-left", "gripper_limits": [0.0, -6.57]},
            "right": {"channel": f"sim:{name}-right", "gripper_limits": [0.0, -6.57]},
            "home_pose": home * 2, "home_speed": 0.3,
        }},
        "safety": {"home_on_stop": True},
        "record": {"enabled": False},
    }
    t_signals: list[float] = []

    def left_joint1() -> float | None:
        recent = [f for f in list(buses.captures["left"].frames)[-60:] if f.arbitration_id == 1]
        recent = [f for f in recent if classify(1, f.data) == "mit"]
        return unpack_mit(recent[-1].data, TYPES[0]).position if recent else None

    def two_ctrl_c() -> None:
        deadline = time.monotonic() + 60
        while len(mit(list(buses.captures["left"].frames), 2)) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)  # the policy is driving the arms
        t_signals.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)
        while ((q := left_joint1()) is None or q > -0.3) and time.monotonic() < deadline:
            time.sleep(0.01)  # homing is under way, a third of the way to joint1's home
        t_signals.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=two_ctrl_c, daemon=True)
    watcher.start()
    try:
        result = run_session_file(write_session(tmp_path, session)).to_json()
    finally:
        watcher.join(5)
        frames = buses.close()
    assert len(t_signals) == 2
    assert result["ok"] is False and result["exitCode"] == 130 and result["stopReason"] == "forced_exit"
    assert result["safeStops"] == 1 and not result["safeStopFailures"]
    assert any("homing stopped" in e and "interrupted" in e for e in result["errors"])
    t_second = t_signals[1]
    for side in ("left", "right"):
        # the arms stop on their next bus cycle: each motor gets at most the homing frame in flight
        # after the second Ctrl-C, then stop frames (counted, not timed: a loaded host stretches cycles)
        at_most_the_frame_in_flight(frames[side], t_second, side, "the second Ctrl-C")
        first_stop_frame(frames[side], after=t_second)
        assert all(not m.enabled for m in buses.sims[side].motors.values())
    last_commanded = [p for _, p, kp in mit(frames["left"], 1) if kp > NOMINAL_KP[0] - 0.2][-1]
    assert last_commanded > -0.95, "homing was cut short, not finished"

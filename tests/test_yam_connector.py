"""The yam_bimanual connector driven directly (no runner) against simulated buses."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from reflex.can.capture import BusCapture, Captured, classify
from reflex.can.codec import unpack_mit
from reflex.can.faults import MotorStatus
from reflex.can.motors import motor_type
from reflex.can.sim.bus import SimMotorBus
from reflex.can.sim.motor import SimMotor
from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.hardware.yam.config import YamBimanualConfig, YamBimanualSpec
from reflex.hardware.yam.robot import HardwareFault, YamBimanual
from reflex.hardware.yam.sim import YamOnSimBuses, yam_sim_motors

LIMITS = [0.0, -6.57]  # the simulated gripper's stops: closed at 0, open one stroke below


def config(name: str, **kw: Any) -> YamBimanualConfig:
    arms = {
        side: {"channel": f"sim:{name}-{side}", "gripper": "linear_4310", "gripper_limits": LIMITS}
        for side in ("left", "right")
    }
    for side in ("left", "right"):
        arms[side].update(kw.pop(side, {}))
    # the simulated motors answer from their own thread, which a loaded machine can starve for
    # tens of ms: only the test about the reply budget sets a tight one
    kw.setdefault("reply_budget_ms", 250)
    return YamBimanualConfig.model_validate({**arms, "sim": {"seed": 1}, **kw})


def robot(cfg: YamBimanualConfig, tmp_path: Path, mode: str = "apply_actions") -> YamBimanual:
    return YamOnSimBuses(cfg, BuildContext(config_dir=tmp_path, mode=mode, control_rate_hz=30.0))


class Buses:
    """Pre-started simulated buses (so a test can shape the motors) plus captures of both."""

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


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return "yc-" + request.node.name.replace("_", "")[-24:]


def host_kinds(frames: list[Captured]) -> list[str]:
    return [classify(f.arbitration_id, f.data) for f in frames if f.arbitration_id < 0x10 or f.arbitration_id == 0x7FF]


@pytest.fixture
def buses(name: str) -> Iterator[Buses]:
    b = Buses(name)
    yield b
    b.close()


def test_dry_run_connect_is_read_only_and_refuses_enable(name: str, buses: Buses, tmp_path: Path) -> None:
    hw = robot(config(name), tmp_path, mode="dry_run")
    hw.connect()
    try:
        samples = [hw.read_state() for _ in range(5)]
        assert samples[-1].position.shape == (14,) and samples[-1].velocity is not None
        assert hw.layout.names[6] == "left_gripper" and hw.layout.dim == 14
        assert samples[-1].extras["status"] == [0] * 14
        with pytest.raises(RuntimeError, match="torque is for apply_actions only"):
            hw.enable()
        time.sleep(0.1)
        hw.safe_stop("test")
    finally:
        hw.close()
    for frames in buses.close().values():
        assert set(host_kinds(frames)) == {"register_refresh", "register_read"}
    assert not any(m.enabled for s in buses.sims.values() for m in s.motors.values())


def test_silent_motor_refuses_bring_up_naming_arm_and_joint(name: str, tmp_path: Path) -> None:
    def silence(side: str, motors: list[SimMotor]) -> None:
        motors[3].silent = side == "right"

    b = Buses(name, silence)
    try:
        hw = robot(config(name), tmp_path)
        with pytest.raises(SetupError, match=r"right joint4 on sim:\S+ \(motor 0x04\): no reply"):
            hw.connect()
        hw.close()
    finally:
        frames = b.close()
    assert "enable" not in host_kinds(frames["left"]) + host_kinds(frames["right"])


def test_faulted_motor_refuses_enable_naming_arm_and_joint(name: str, tmp_path: Path) -> None:
    def fault(side: str, motors: list[SimMotor]) -> None:
        if side == "right":
            motors[1].inject_fault(MotorStatus.OVER_CURRENT, 0.0)

    b = Buses(name, fault)
    hw = robot(config(name), tmp_path)
    try:
        hw.connect()  # reading a faulted motor is fine
        with pytest.raises(SetupError, match=r"right joint2 on sim:\S+ \(motor 0x02\): reports over-current"):
            hw.enable()
    finally:
        hw.close()
        frames = b.close()
    assert "enable" not in host_kinds(frames["left"]) + host_kinds(frames["right"])


def test_joint_outside_limits_refuses_enable(name: str, tmp_path: Path) -> None:
    def bend(side: str, motors: list[SimMotor]) -> None:
        if side == "left":
            motors[0].q = -3.0  # joint1 range is [-2.618, pi] (and no gravity on it)

    b = Buses(name, bend)
    hw = robot(config(name), tmp_path)
    try:
        hw.connect()
        with pytest.raises(SetupError, match=r"left joint1 on sim:\S+ \(motor 0x01\): at -3.000 rad, 0.382 rad below"):
            hw.enable()
    finally:
        hw.close()
        b.close()


def test_watchdog_is_set_before_enabling_only_if_off(name: str, tmp_path: Path) -> None:
    def no_watchdog(side: str, motors: list[SimMotor]) -> None:
        for m in motors:
            m.registers[9] = 0

    b = Buses(name, no_watchdog)
    dry = robot(config(name), tmp_path, mode="dry_run")
    dry.connect()
    dry.close()
    assert all(m.registers[9] == 0 for s in b.sims.values() for m in s.motors.values()), "dry_run wrote"
    hw = robot(config(name), tmp_path)
    try:
        hw.connect()
        hw.enable()
        assert all(m.registers[9] == 8000 for s in b.sims.values() for m in s.motors.values())
    finally:
        hw.close()
        frames = b.close()
    kinds = host_kinds(frames["left"])
    assert kinds.index("register_write") < kinds.index("enable")


def mit_positions(frames: list[Captured], esc: int) -> list[float]:
    mt = motor_type("DM4340" if esc <= 3 else "DM4310")
    return [
        unpack_mit(f.data, mt).position for f in frames if f.arbitration_id == esc and classify(esc, f.data) == "mit"
    ]


def test_enable_holds_measured_pose_and_close_disables(name: str, buses: Buses, tmp_path: Path) -> None:
    hw = robot(config(name), tmp_path)
    hw.connect()
    try:
        before = hw.read_state().position
        hw.enable()
        target = before.copy()
        target[0] += 0.04
        target[13] = 0.2
        for step in range(20):
            hw.read_state()
            hw.apply(target, step)
            time.sleep(1 / 30)
        after = hw.read_state().position
    finally:
        hw.close()
    frames = buses.close()
    assert after[0] == pytest.approx(target[0], abs=0.01)
    assert after[13] == pytest.approx(0.2, abs=0.05)
    assert mit_positions(frames["left"], 1)[0] == pytest.approx(before[0], abs=4e-4)
    for sim in buses.sims.values():
        for m in sim.motors.values():
            assert m.status == MotorStatus.DISABLED
            assert [e.what for e in m.events] == ["write_register 9=8000", "enable", "disable"]


def test_gripper_calibration_finds_the_stops(name: str, buses: Buses, tmp_path: Path) -> None:
    cfg = config(name, left={"gripper_limits": None}, right={"gripper_limits": None})
    hw = robot(cfg, tmp_path)
    hw.connect()
    try:
        assert hw.read_state().extras["gripper_calibrated"] == {"left": False, "right": False}
        hw.enable()
        state = hw.read_state()
        assert state.extras["gripper_calibrated"] == {"left": True, "right": True}
        for arm in hw.arms:
            closed, opened = arm.gripper_limits or (0.0, 0.0)
            assert closed == pytest.approx(0.0, abs=0.02) and opened == pytest.approx(-6.57, abs=0.02)
        assert state.position[6] == pytest.approx(1.0, abs=0.02)  # the last push opened it
    finally:
        hw.close()


def test_over_temperature_safe_stops_both_arms_and_no_reenable(name: str, buses: Buses, tmp_path: Path) -> None:
    hw = robot(config(name), tmp_path)
    hw.connect()
    try:
        hw.enable()
        hold = hw.read_state().position
        buses.sims["left"].inject_fault(5, MotorStatus.MOS_OVER_TEMPERATURE)
        deadline = time.monotonic() + 5
        with pytest.raises(HardwareFault, match=r"left joint5 .*MOSFET over-temperature"):
            while time.monotonic() < deadline:
                hw.read_state()
                hw.apply(hold, 0)
                time.sleep(0.01)
        with pytest.raises(HardwareFault):
            hw.apply(hold, 1)
        hw.safe_stop("test: motor fault")
        time.sleep(0.1)
    finally:
        hw.close()
    frames = buses.close()
    for side, sim in buses.sims.items():
        assert not any(m.enabled for m in sim.motors.values()), side
        assert all([e.what for e in m.events].count("enable") == 1 for m in sim.motors.values())
        kinds = host_kinds(frames[side])
        assert kinds.count("enable") == 7 and "clear_error" not in kinds
    for arm in hw.arms:
        assert arm.chain is None
    stats = {side: frames for side, frames in frames.items()}
    assert stats  # both captures exist


def test_motor_going_silent_while_enabled_stops_both_arms(name: str, buses: Buses, tmp_path: Path) -> None:
    hw = robot(config(name, reply_budget_ms=12), tmp_path)
    hw.connect()
    try:
        hw.enable()
        buses.sims["right"].set_silent(7)
        deadline = time.monotonic() + 5
        with pytest.raises(HardwareFault, match=r"right gripper .*no reply for \d+ ms \(budget 12 ms\)"):
            while time.monotonic() < deadline:
                hw.read_state()
                time.sleep(0.01)
        # the silent motor cannot confirm the disable: the stop fails, leaving it to its watchdog
        with pytest.raises(HardwareFault, match=r"right gripper .* did not confirm the disable .* motor watchdog"):
            hw.safe_stop("test: silent motor")
        assert len(hw.unconfirmed) == 1 and "right gripper" in hw.unconfirmed[0]
    finally:
        hw.close()
    buses.close()
    for side, sim in buses.sims.items():
        enabled = [esc for esc, m in sim.motors.items() if m.enabled]
        assert enabled == ([7] if side == "right" else []), side  # the silent one is left to its watchdog


def test_no_gripper_arm_has_six_joints(name: str, buses: Buses, tmp_path: Path) -> None:
    cfg = config(name, left={"gripper": "no_gripper", "gripper_limits": None})
    hw = robot(cfg, tmp_path, mode="dry_run")
    hw.connect()
    try:
        state = hw.read_state()
        assert state.position.shape == (13,) and hw.layout.names[6] == "right_joint1"
        assert len(hw.arms[0].motors) == 6
    finally:
        hw.close()


def test_latched_comm_loss_is_cleared_at_bring_up_only_if_allowed(name: str, tmp_path: Path) -> None:
    def stale(side: str, motors: list[SimMotor]) -> None:
        for m in motors:
            m.inject_fault(MotorStatus.LOSS_OF_COMMUNICATION, 0.0)

    b = Buses(name, stale)
    try:
        strict = robot(config(name, clear_comm_loss=False), tmp_path)
        strict.connect()
        with pytest.raises(SetupError, match="loss of communication"):
            strict.enable()
        strict.close()
        hw = robot(config(name), tmp_path)
        hw.connect()
        hw.enable()
        assert all(m.enabled for s in b.sims.values() for m in s.motors.values())
        hw.close()
    finally:
        frames = b.close()
    kinds = host_kinds(frames["left"])
    assert kinds.index("clear_error") < kinds.index("enable")


def test_go_home_only_when_enabled(name: str, buses: Buses, tmp_path: Path) -> None:
    dry = robot(config(name), tmp_path, mode="dry_run")
    dry.connect()
    dry.go_home()  # dry_run: nothing happens
    dry.close()
    hw = robot(config(name, home_pose=[0.2, 0.1, 0.1, 0, 0, 0, 0.5] * 2, home_speed=2.0), tmp_path)
    hw.connect()
    try:
        hw.enable()
        hw.go_home()
        q = hw.read_state().position
        assert q[[0, 7]] == pytest.approx([0.2, 0.2], abs=0.05)
    finally:
        hw.close()


def test_config_errors() -> None:
    base = {"left": {"channel": "can1"}, "right": {"channel": "can0"}}
    assert YamBimanualConfig.model_validate(base).bus_rate_hz == 250
    with pytest.raises(ValidationError, match="same channel"):
        YamBimanualConfig.model_validate({**base, "right": {"channel": "can1"}})
    with pytest.raises(ValidationError, match="at most 500 Hz"):
        YamBimanualConfig.model_validate({**base, "bus_rate_hz": 600})
    with pytest.raises(ValidationError, match="no_gripper"):
        YamBimanualConfig.model_validate(
            {**base, "left": {"channel": "c", "gripper": "no_gripper", "gripper_limits": [0, 1]}}
        )
    with pytest.raises(ValidationError, match="gripper"):
        YamBimanualConfig.model_validate({**base, "left": {"channel": "c", "gripper": "flexible_4310"}})
    spec = YamBimanualSpec.model_validate(
        {"kind": "yam_bimanual", "config": {**base, "left": {"channel": "c", "gripper": "no_gripper"}}}
    )
    layout = spec.layout()
    assert layout.dim == 13 and "left_gripper" not in layout.names and layout.names[12] == "right_gripper"
    assert np.all(layout.lower[:6] == [-2.61799, 0.0, 0.0, -1.69297, -1.5708, -2.0944])


def test_the_bus_side_band_never_exceeds_the_sessions_max_delta(tmp_path: Path) -> None:
    """The chain slews towards the runner's target on its own; with the session's max_delta it
    keeps every MIT frame within that of the measured position (the guard's bound, frame by frame),
    not just within the wider hardware max_error."""
    cfg = config("band")
    deltas = [0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.02] * 2  # per joint; the gripper as a stroke fraction
    hw = YamOnSimBuses(cfg, BuildContext(config_dir=tmp_path, mode="apply_actions", control_rate_hz=30.0,
                                         max_delta=deltas))
    try:
        hw.connect()
        hw.enable()
        for arm in hw.arms:
            controls = arm._controls()
            assert [c.max_error for c in controls[:6]] == pytest.approx([min(d, cfg.max_error) for d in deltas[:6]])
            assert controls[6].max_error == pytest.approx(0.02 * abs(LIMITS[1] - LIMITS[0]))
    finally:
        hw.close()
    plain = robot(config("band-none"), tmp_path)
    assert all(c.max_error == cfg.max_error for c in plain.arms[0]._controls()[:6]), "no session bound: hardware's own"

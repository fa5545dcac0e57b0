"""What the result says when a stop cannot be confirmed, and when bring-up fails after the first
enable frame (issue: motion safety, Build items 3 and 8), on the simulated bus with CAN captures.

* A motor that never confirms the disable (it went silent, its replies are lost, its bus is off)
  is stated one way, by one mechanism (reflex.can.unconfirmed): the arm, the motor, the frame it
  last acknowledged and when its watchdog expires; the stop counts as failed, the session is
  ``ok: false``.
* A fault at any stage after the first enable frame (enable, gripper calibration, homing) says
  the motors were powered, whether the safe stop was done or failed, and ``ok: false``.

Faults are made to happen at a point of the protocol (the motor's enable frame, a push of the
gripper, its n-th command), never after a sleep.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import write_session
from test_yam_motion_safety import (
    NOMINAL_KP,
    PERIOD,
    RATE_HZ,
    Buses,
    config,
    feedback,
    first_stop_frame,
    hold_for,
    mit,
    robot,
)

from reflex.can.capture import Captured, classify
from reflex.can.codec import unpack_mit
from reflex.can.faults import MotorStatus
from reflex.can.sim.motor import SimMotor
from reflex.hardware.yam.robot import HardwareFault
from reflex.runtime.session import run_session_file

# the longest motor watchdog allowed: a loaded machine that starves a bus thread for a few hundred
# ms must not fire it in tests about something else
WATCHDOG_MS = 1000
WATCHDOG_S = WATCHDOG_MS / 1e3
# the one statement every unconfirmed stop ends in (reflex.can.unconfirmed.left_to_watchdog)
STATEMENT = re.compile(
    r"(?P<arm>left|right) arm \(sim:[^)]+\): (?P<motors>.+) did not confirm the disable \((?P<cause>[^;]+)\); "
    r"left to (its|their) motor watchdog \(1000 ms\), which (expires|expired) at \d\d:\d\d:\d\d\.\d{3} UTC, "
    r"1000 ms after the last frame (it|they) acknowledged \(at the latest \d\d:\d\d:\d\d\.\d{3} UTC, 1000 ms "
    r"after the last frame that left for (it|them)\)"
)


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def check_records(records: list[dict[str, Any]], motors: list[str]) -> None:
    """One record per unconfirmed motor; its watchdog runs out watchdog_ms after the frame it last
    acknowledged, and at the latest that long after the last frame that left for it."""
    assert [r["motor"].split(" on ")[0] for r in records] == motors
    for r in records:
        assert r["watchdogMs"] == WATCHDOG_MS
        assert seconds(r["expiresAt"]) - seconds(r["lastAcknowledged"]) == pytest.approx(WATCHDOG_S, abs=1e-5)
        assert seconds(r["expiresBy"]) >= seconds(r["expiresAt"])


def host_frames(frames: list[Captured], esc: int) -> list[Captured]:
    return [f for f in frames if f.arbitration_id == esc]


# ------------------------------------------------------------------------------ the three paths
def lose_replies_once_stopping(side: str, motors: list[SimMotor]) -> None:
    """Right joint3 hears everything but its replies are lost from the first stop frame on."""
    if side != "right":
        return

    def hook(m: SimMotor, aid: int, data: bytes, t: float) -> None:
        if aid == 3 and classify(aid, data) == "mit" and unpack_mit(data, m.mt).kp < NOMINAL_KP[2] - 0.2:
            m.drop_next_replies = 10**9

    motors[2].on_frame = hook


def esc_of(where: str) -> int:
    return int(where.rsplit("(motor 0x", 1)[1].rstrip(")"), 16)


@pytest.mark.parametrize("path", ["silent", "replies_lost_in_stop", "bus_off"])
def test_every_unconfirmed_stop_names_the_motor_and_its_watchdog_expiry(path: str, tmp_path: Path) -> None:
    name = f"ts-{path[:6]}"
    side = "left" if path == "bus_off" else "right"
    buses = Buses(name, lose_replies_once_stopping if path == "replies_lost_in_stop" else None)
    hw = robot(config(name, watchdog_ms=WATCHDOG_MS), tmp_path)
    try:
        hw.connect()
        hw.enable()
        hold_for(hw, 0.2)
        if path == "silent":
            buses.sims["right"].set_silent(4)
        elif path == "bus_off":
            buses.sims["left"].set_bus_off()
        if path != "replies_lost_in_stop":
            with pytest.raises(HardwareFault):
                hold_for(hw, 5.0)  # the fault stops both arms
        with pytest.raises(HardwareFault) as failed:
            hw.safe_stop(f"test: {path}")
        chain = hw.arms[0 if side == "left" else 1].chain
        assert chain is not None
        unconfirmed = list(chain.unconfirmed)
        records = list(hw.left_to_watchdog)
    finally:
        hw.close()
        now = time.monotonic()
        # each simulated motor's clock brought up to now: a watchdog that ran out has fired
        events = {
            s: sim.with_motors(lambda ms: {e: (m.advance(now), m.status, list(m.events))[1:] for e, m in ms.items()})
            for s, sim in buses.sims.items()
        }
        frames = buses.close()
    statements = list(STATEMENT.finditer(str(failed.value)))
    assert len(statements) == 1 and statements[0]["arm"] == side, str(failed.value)
    expected = {"silent": ["right joint4"], "replies_lost_in_stop": ["right joint3"],
                "bus_off": [f"left joint{j}" for j in range(1, 7)] + ["left gripper"]}[path]
    check_records(records, expected)
    assert [u.where.split(" on ")[0] for u in unconfirmed] == expected
    assert statements[0]["motors"] == ", ".join(u.where for u in unconfirmed)
    for u in unconfirmed:
        esc = esc_of(u.where)
        assert u.last_reply is not None and u.last_sent is not None
        assert u.last_sent >= host_frames(frames[side], esc)[-1].t  # the last frame that left for it
        status, motor_events = events[side][esc]
        if status == MotorStatus.LOSS_OF_COMMUNICATION:  # its watchdog fired: never after the stated bound
            (t_fired,) = [e.t for e in motor_events if e.what == "fault 0xD"]
            assert t_fired <= u.expires_by(WATCHDOG_S, now)
    if path == "silent":
        assert statements[0]["cause"] == "no reply to the disable frames for 500 ms"
        (u,) = unconfirmed
        # it last answered before the silence was noticed; the simulated motor heard nothing since,
        # so its own watchdog fired no later than the stated expiry (a watchdog after that answer)
        assert feedback(frames["right"], 4)[-1][0] <= u.last_reply <= first_stop_frame(frames["right"])
        status, motor_events = events["right"][4]
        assert status == MotorStatus.LOSS_OF_COMMUNICATION
        assert next(e.t for e in motor_events if e.what == "fault 0xD") <= u.last_reply + WATCHDOG_S
    elif path == "replies_lost_in_stop":
        (u,) = unconfirmed
        assert u.last_reply < first_stop_frame(frames["right"])  # nothing acknowledged since the stop began
        assert events["right"][3][0] == MotorStatus.DISABLED, "it heard the disable (only its replies were lost)"
    else:
        assert statements[0]["cause"].startswith("bus error, no frame reaches its motors")
        assert all(status == MotorStatus.LOSS_OF_COMMUNICATION for status, _ in events["left"].values())
    # no other motor is left enabled
    left_alone = {(side, esc_of(u.where)) for u in unconfirmed}
    for s in ("left", "right"):
        others = {e: st for e, (st, _) in events[s].items() if (s, e) not in left_alone}
        assert all(st != MotorStatus.ENABLED for st in others.values()), (s, others)


# ------------------------------------------------------------------------------ session level
def session(name: str, max_steps: int = 60, **hw: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "left": {"channel": f"sim:{name}-left"},
        "right": {"channel": f"sim:{name}-right"},
        # a loaded machine can starve a thread for hundreds of ms: these faults are explicit
        "reply_budget_ms": 250,
        "runner_timeout_s": 1.5,
        "watchdog_ms": WATCHDOG_MS,
    }
    config.update(hw)
    return {
        "mode": "apply_actions",
        "control_rate_hz": RATE_HZ,
        "max_steps": max_steps,
        "target": {"kind": "local", "export": "builtin:demo_state_only"},
        "hardware": {"kind": "yam_bimanual", "config": config},
        "safety": {"max_command_gap_ms": 1000, "stop": {"hold_s": 0.3, "damp_s": 0.3}},
        "record": {"enabled": False},
    }


def on_motor(side: str, esc: int, hook: Any) -> Any:
    def shape(s: str, motors: list[SimMotor]) -> None:
        if s == side:
            motors[esc - 1].on_frame = hook

    return shape


def overheat_at_enable(m: SimMotor, aid: int, data: bytes, t: float) -> None:
    if aid == m.esc_id and classify(aid, data) == "enable":
        m.inject_fault(MotorStatus.MOS_OVER_TEMPERATURE, t)


def replies_lost_from_enable(m: SimMotor, aid: int, data: bytes, t: float) -> None:
    if aid == m.esc_id and classify(aid, data) == "enable":
        m.drop_next_replies = 10**9


def overheat_when_pushed(m: SimMotor, aid: int, data: bytes, t: float) -> None:
    """The gripper overheats while calibration pushes it (kp = 0, a torque) against its stop."""
    if aid == m.esc_id and classify(aid, data) == "mit" and m.enabled:
        cmd = unpack_mit(data, m.mt)
        if cmd.kp == 0 and abs(cmd.torque) > 0.1:
            m.inject_fault(MotorStatus.MOS_OVER_TEMPERATURE, t)


def silent_after_commands(m: SimMotor, aid: int, data: bytes, t: float) -> None:
    if aid == m.esc_id and classify(aid, data) == "mit" and m.counts.get("mit", 0) >= 150:
        m.silent = True


STAGES = {
    # stage: (the motor and its fault, what the error names)
    "enable": (("right", 3, overheat_at_enable), r"hardware\.enable: right joint3 .*over-temperature"),
    "gripper_calibration": (
        ("left", 7, overheat_when_pushed),
        r"hardware\.enable: .*gripper calibration stopped: .*left gripper .*over-temperature",
    ),
    "enable_replies_lost": (
        ("right", 5, replies_lost_from_enable), r"hardware\.enable: right joint5 .*no reply to enable",
    ),
}
GRIPPERS = {"gripper_limits": [0.0, -6.57]}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_fault_during_bring_up_reports_powered_motors_the_safe_stop_and_not_ok(stage: str, tmp_path: Path) -> None:
    (side, esc, hook), error = STAGES[stage]
    name = f"ts-{stage[:9]}"
    buses = Buses(name, on_motor(side, esc, hook))
    cfg = session(name)
    if stage != "gripper_calibration":  # skip the calibration: the fault is in enable itself
        for s in ("left", "right"):
            cfg["hardware"]["config"][s].update(GRIPPERS)
    try:
        result = run_session_file(write_session(tmp_path, cfg)).to_json()
    finally:
        frames = buses.close()
    why = (result["errors"], result["safeStopFailures"])
    assert result["ok"] is False and result["stopReason"] == "setup_failed", why
    assert result["motorsPowered"] is True and result["safeStops"] == 1, why
    assert any(re.search(error, e) for e in result["errors"]), result["errors"]
    if stage == "enable_replies_lost":
        # its replies are gone: the disable cannot be confirmed, the stop failed (exit 4), stated
        assert result["exitCode"] == 4, why
        (failure,) = result["safeStopFailures"]
        (statement,) = list(STATEMENT.finditer(failure))
        assert statement["motors"].startswith("right joint5 on sim:")
        check_records(result["leftToWatchdog"], ["right joint5"])
        assert "hardware.enable: motors were powered (an enable frame went out); the safe stop failed, check the " \
               "robot (safeStopFailures)" in result["errors"]
    else:
        assert result["exitCode"] == 3 and not result["safeStopFailures"] and not result["leftToWatchdog"], why
        assert "hardware.enable: motors were powered (an enable frame went out); safe-stopped" in result["errors"]
    for s in ("left", "right"):
        kinds = [classify(f.arbitration_id, f.data) for f in frames[s] if f.arbitration_id < 0x10]
        assert "enable" in kinds and "disable" in kinds, s
        assert all(not m.enabled for m in buses.sims[s].motors.values()), s
    if stage == "gripper_calibration":  # the stop began on the bus cycle after the fault reply
        t_fault = next(f.t for f in frames["left"] if f.arbitration_id == 0x17 and f.data[0] >> 4 == 0xB)
        for s in ("left", "right"):
            assert first_stop_frame(frames[s], after=t_fault) - t_fault <= PERIOD


def test_a_motor_silent_in_a_session_is_left_to_its_watchdog_in_the_result(tmp_path: Path) -> None:
    name = "ts-sess-silent"
    buses = Buses(name, on_motor("right", 4, silent_after_commands))
    cfg = session(name, max_steps=300)
    for s in ("left", "right"):
        cfg["hardware"]["config"][s].update(GRIPPERS)
    try:
        result = run_session_file(write_session(tmp_path, cfg)).to_json()
    finally:
        buses.close()
    why = (result["errors"], result["safeStopFailures"])
    assert result["ok"] is False and result["exitCode"] == 4 and result["safeStops"] == 1, why
    assert result["motorsPowered"] is True and result["stopReason"].startswith("incident:"), why
    assert any("right joint4" in e and "no reply for" in e for e in result["errors"]), result["errors"]
    (failure,) = result["safeStopFailures"]
    (statement,) = list(STATEMENT.finditer(failure))
    assert statement["arm"] == "right" and statement["motors"].startswith("right joint4 on sim:")
    check_records(result["leftToWatchdog"], ["right joint4"])


def test_a_fault_while_homing_reports_powered_motors_and_one_safe_stop(tmp_path: Path) -> None:
    name = "ts-homing"
    buses = Buses(name)
    home = [-1.0, 0.3, 0.3, 0.0, 0.0, 0.0, 1.0]
    cfg = session(name, max_steps=20, home_pose=home * 2, home_speed=0.3)
    for s in ("left", "right"):
        cfg["hardware"]["config"][s].update(GRIPPERS)
    cfg["safety"]["home_on_stop"] = True
    t_fault: list[float] = []

    def fault_while_homing() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            commands = mit(list(buses.captures["left"].frames)[-60:], 1)
            if commands and commands[-1][1] < -0.3:  # homing is a third of the way to joint1's home
                t_fault.append(time.monotonic())
                buses.sims["left"].inject_fault(2, MotorStatus.ROTOR_OVER_TEMPERATURE)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=fault_while_homing, daemon=True)
    watcher.start()
    try:
        result = run_session_file(write_session(tmp_path, cfg)).to_json()
    finally:
        watcher.join(5)
        frames = buses.close()
    assert t_fault, ("homing never got under way", result["errors"], result["stopReason"])
    why = (result["errors"], result["safeStopFailures"])
    assert result["ok"] is False and result["exitCode"] == 1 and result["safeStops"] == 1, why
    assert result["motorsPowered"] is True and not result["safeStopFailures"] and not result["leftToWatchdog"], why
    assert any(e.startswith("home: ") and "left joint2" in e and "over-temperature" in e for e in result["errors"])
    for s in ("left", "right"):
        assert all(not m.enabled for m in buses.sims[s].motors.values()), s
        homing_frames = [p for _, p, kp in mit(frames[s], 1) if kp > NOMINAL_KP[0] - 0.2]
        assert homing_frames[-1] > -0.95, "homing was cut short by the fault"

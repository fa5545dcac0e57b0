"""Whole sessions on simulated YAM arms: the runner, the connector, the driver and the simulated
motors together, with every frame on both buses captured."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO, json_result, run_cli, subprocess_env, write_session

from reflex.can.capture import BusCapture, Captured, classify
from reflex.can.codec import decode_feedback, unpack_mit
from reflex.can.faults import MotorStatus
from reflex.can.motors import motor_type
from reflex.hardware.yam_layout import ARM_LOWER, ARM_UPPER
from reflex.runtime.session import run_session_file

SIDES = ("left", "right")
TYPES = [motor_type(t) for t in ("DM4340", "DM4340", "DM4340", "DM4310", "DM4310", "DM4310", "DM4310")]
NOMINAL_KP = (80.0, 80.0, 80.0, 10.0, 10.0, 10.0, 20.0)
GRIPPER_CLOSED, GRIPPER_OPEN = 0.0, -6.57  # where the simulated gripper's stops are
MAX_DELTA = 0.05


def yam_session(name: str, mode: str = "dry_run", max_steps: int = 45, **hw: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "left": {"channel": f"sim:{name}-left", "gripper": "linear_4310"},
        "right": {"channel": f"sim:{name}-right", "gripper": "linear_4310"},
        # a loaded machine can starve a thread for hundreds of ms: these tests are not about the
        # reply budget (test_damiao_chain and test_yam_motion_safety are)
        "reply_budget_ms": 250,
    }
    config.update(hw)
    return {
        "mode": mode,
        "control_rate_hz": 30,
        "max_steps": max_steps,
        "target": {"kind": "local", "export": "builtin:demo_state_only"},
        "hardware": {"kind": "yam_bimanual", "config": config},
        "cameras": {},
        "safety": {"max_delta": MAX_DELTA},
        "record": {"enabled": False},
    }


def captures(name: str) -> dict[str, BusCapture]:
    return {side: BusCapture(f"sim:{name}-{side}") for side in SIDES}


def stop_all(caps: dict[str, BusCapture]) -> dict[str, list[Captured]]:
    return {side: cap.stop() for side, cap in caps.items()}


def host_kinds(frames: list[Captured]) -> list[str]:
    return [classify(f.arbitration_id, f.data) for f in frames if f.arbitration_id < 0x10 or f.arbitration_id == 0x7FF]


def test_dry_run_session_never_enables_nor_sends_mit(tmp_path: Path) -> None:
    caps = captures("ys-dry")
    try:
        result = run_session_file(write_session(tmp_path, yam_session("ys-dry")))
    finally:
        frames = stop_all(caps)
    assert result.exit_code == 0 and result.to_json()["ok"] is True, result.errors
    assert result.steps == 45 and result.applied_steps == 0
    for side in SIDES:
        kinds = host_kinds(frames[side])
        assert len(kinds) > 45 * 7, "the motors were polled"
        assert set(kinds) == {"register_refresh", "register_read"}, f"{side}: {set(kinds)}"
        replies = [f for f in frames[side] if 0x11 <= f.arbitration_id <= 0x17]
        assert all(
            f.data[0] >> 4 == MotorStatus.DISABLED for f in replies if classify(f.arbitration_id, f.data) == "feedback"
        )


def check_commands(frames: list[Captured]) -> tuple[int, float]:
    """Every MIT position command is inside its joint's limits and within MAX_DELTA of the latest
    measured position of that motor. Returns (commands checked, largest distance seen)."""
    measured: dict[int, float] = {}
    checked, worst = 0, 0.0
    stroke = GRIPPER_OPEN - GRIPPER_CLOSED
    for f in frames:
        kind = classify(f.arbitration_id, f.data)
        if kind == "feedback":
            esc = f.arbitration_id - 0x10
            measured[esc] = decode_feedback(f.data, TYPES[esc - 1]).position
        elif kind == "mit":
            esc = f.arbitration_id
            cmd = unpack_mit(f.data, TYPES[esc - 1])
            if cmd.kp < NOMINAL_KP[esc - 1] - 0.2:
                # pure torque (gripper calibration), or a safe stop holding at reduced stiffness a
                # pose that a sagging joint drags along within max_error
                continue
            if esc <= 6:
                assert ARM_LOWER[esc - 1] - 4e-4 <= cmd.position <= ARM_UPPER[esc - 1] + 4e-4
                distance = abs(cmd.position - measured[esc])
            else:  # gripper, in the normalised units the guard uses (0 closed .. 1 open)
                fraction = (cmd.position - GRIPPER_CLOSED) / stroke
                assert -0.005 <= fraction <= 1.005
                distance = abs(cmd.position - measured[esc]) / abs(stroke)
            assert distance <= MAX_DELTA + 4e-4, f"motor {esc}: {cmd.position} vs measured {measured[esc]}"
            checked += 1
            worst = max(worst, distance)
    return checked, worst


def test_apply_actions_commands_stay_in_limits_and_near_the_measured_pose(tmp_path: Path) -> None:
    caps = captures("ys-apply")
    try:
        result = run_session_file(write_session(tmp_path, yam_session("ys-apply", "apply_actions", 60)))
    finally:
        frames = stop_all(caps)
    assert result.exit_code == 0, result.errors
    # a step may hold (no command) when bring-up outlasted the first chunk: never a stale action
    held = result.loop["heldSteps"]
    assert result.applied_steps + held == result.steps == 60 and held <= 5 and result.safe_stops == 0
    for side in SIDES:
        checked, worst = check_commands(frames[side])
        assert checked > 60 * 7 * 3, "the bus runs several cycles per control step"
        assert worst > 0.005, "the policy did move the arm"
        kinds = host_kinds(frames[side])
        first_enable = kinds.index("enable")
        assert "mit" not in kinds[:first_enable], "no MIT command before enabling"
        torque = [k for k in kinds if k in ("enable", "mit", "disable")]
        assert torque[-7:] == ["disable"] * 7, "the session ends with every motor disabled"


def test_injected_over_temperature_safe_stops_and_never_reenables(tmp_path: Path) -> None:
    sim = {"faults": [{"arm": "right", "joint": 3, "kind": "mos_over_temperature", "after": "enable", "at_s": 0.5}]}
    caps = captures("ys-hot")
    try:
        result = run_session_file(write_session(tmp_path, yam_session("ys-hot", "apply_actions", 150, sim=sim)))
    finally:
        frames = stop_all(caps)
    out = result.to_json()
    assert out["ok"] is False and result.exit_code == 1 and out["safeStops"] == 1
    assert not out["safeStopFailures"]
    assert any("right joint3" in e and "over-temperature" in e for e in out["errors"]), out["errors"]
    assert result.steps < 150
    for side in SIDES:
        kinds = host_kinds(frames[side])
        assert kinds.count("enable") == 7 and "clear_error" not in kinds, side
        assert "disable" in kinds
        last_disable = len(kinds) - 1 - kinds[::-1].index("disable")
        assert "mit" not in kinds[last_disable:], f"{side}: torque commands after the stop"
    # on the faulted bus, the stop starts on the cycle right after the first 0xB reply
    right = frames["right"]
    i = next(k for k, f in enumerate(right) if f.arbitration_id == 0x13 and f.data[0] >> 4 == 0xB)
    nxt = [f for f in right[i + 1 :] if f.arbitration_id < 0x10][:14]
    held = {
        f.arbitration_id: unpack_mit(f.data, TYPES[f.arbitration_id - 1])
        for f in nxt
        if classify(f.arbitration_id, f.data) == "mit"
    }
    assert held and all(c.velocity == pytest.approx(0.0, abs=0.02) for c in held.values())


class NanFirstChunk:
    """A target whose first chunk is invalid (NaN): the arms must never be enabled."""

    def __init__(self) -> None:
        from reflex.targets.export_manifest import resolve_export_dir
        from reflex.targets.local.config import LocalTargetSpec
        from reflex.targets.local.target import LocalTarget

        spec = LocalTargetSpec(export="builtin:demo_state_only")
        self.inner = LocalTarget(spec, resolve_export_dir(spec.export, Path.cwd()))

    def connect(self) -> Any:
        return self.inner.connect()

    def infer(self, obs: Any) -> tuple[np.ndarray, dict[str, float]]:
        chunk, timing = self.inner.infer(obs)
        chunk[0, 3] = np.nan
        return chunk, timing

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(
    "target",
    [
        {"kind": "test_yam_session:NanFirstChunk"},
        {"kind": "local", "export": "no/such/export"},
    ],
    ids=["invalid-first-chunk", "target-fails"],
)
def test_no_enable_without_a_valid_first_chunk(tmp_path: Path, target: dict[str, Any]) -> None:
    session = yam_session("ys-nochunk", "apply_actions")
    session["target"] = target
    caps = captures("ys-nochunk")
    try:
        result = run_session_file(write_session(tmp_path, session))
    finally:
        frames = stop_all(caps)
    assert result.exit_code == 3, result.errors
    assert any(e.startswith("target") for e in result.errors), result.errors
    for side in SIDES:
        assert {"enable", "mit"}.isdisjoint(host_kinds(frames[side])), side


def test_silent_motor_fails_setup_naming_arm_and_joint(tmp_path: Path) -> None:
    sim = {"faults": [{"arm": "left", "joint": 6, "kind": "silent"}]}
    caps = captures("ys-silent")
    try:
        result = run_session_file(write_session(tmp_path, yam_session("ys-silent", "apply_actions", sim=sim)))
    finally:
        frames = stop_all(caps)
    assert result.exit_code == 3 and result.to_json()["stopReason"] == "setup_failed"
    assert any("left joint6" in e and "motor 0x06" in e and "no reply" in e for e in result.errors), result.errors
    for side in SIDES:
        assert {"enable", "mit"}.isdisjoint(host_kinds(frames[side]))


def test_home_on_stop_drives_home_then_disables(tmp_path: Path) -> None:
    session = yam_session("ys-home", "apply_actions", 60, home_speed=2.0, sim={"report": "report"})
    session["safety"]["home_on_stop"] = True
    result = run_session_file(write_session(tmp_path, session))
    assert result.exit_code == 0, result.errors
    for side in SIDES:
        report = json.loads((tmp_path / "report" / f"sim_ys-home-{side}.json").read_text())
        motors = report["motors"]
        assert all(m["status"] == 0 for m in motors.values())
        assert [motors[str(j)]["position"] for j in range(1, 7)] == pytest.approx([0.0] * 6, abs=0.06)
        assert motors["7"]["position"] == pytest.approx(GRIPPER_OPEN, abs=0.4)


def read_steps(path: Path) -> int:
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.startswith('{"type":"step"'))


@pytest.mark.slow
def test_ctrl_c_during_apply_actions_leaves_motors_disabled(tmp_path: Path) -> None:
    session = yam_session("ys-sigint", "apply_actions", 0, sim={"report": "report"})
    session["record"] = {"formats": ["jsonl"]}
    config = write_session(tmp_path, session)
    rec = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json", "--record", str(rec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while read_steps(rec / "jsonl" / "steps.jsonl") < 30:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the session did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["stopReason"] == "signal:SIGINT" and result["appliedSteps"] >= 29
    for side in SIDES:
        report = json.loads((tmp_path / "report" / f"sim_ys-sigint-{side}.json").read_text())
        for esc, m in report["motors"].items():
            assert m["status"] == MotorStatus.DISABLED, f"{side} motor {esc} left {m['status']}"
            assert [e[1] for e in m["events"]] == ["write_register 9=8000", "enable", "disable"], f"{side} motor {esc}"


@pytest.mark.slow
def test_shipped_sim_config_runs_ok(tmp_path: Path) -> None:
    proc = run_cli(
        ["connect", "--config", "configs/yam_bimanual_sim.yaml", "--json"], REFLEX_RECORDINGS_DIR=str(tmp_path)
    )
    result = json_result(proc)
    assert proc.returncode == 0 and result["ok"] is True, proc.stderr
    assert result["steps"] == 150 and result["mode"] == "dry_run"


def test_configs_differ_only_in_channels() -> None:
    import yaml

    real = yaml.safe_load((REPO / "configs" / "yam_bimanual.yaml").read_text())
    sim = yaml.safe_load((REPO / "configs" / "yam_bimanual_sim.yaml").read_text())
    for side in SIDES:
        assert not real["hardware"]["config"][side]["channel"].startswith("sim:")
        assert sim["hardware"]["config"][side]["channel"] == "sim:" + real["hardware"]["config"][side]["channel"]
        sim["hardware"]["config"][side]["channel"] = real["hardware"]["config"][side]["channel"]
    assert sim == real


def test_state_only_demo_export_is_reproducible(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "reflex.demo.build_export", "--state-only", str(tmp_path)], check=True, cwd=REPO
    )
    shipped = REPO / "reflex" / "demo" / "exports" / "demo_state_only"
    for name in ("model.onnx", "reflex_config.json"):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name
    manifest = json.loads((shipped / "reflex_config.json").read_text())
    assert [i["role"] for i in manifest["inputs"]] == ["state", "noise"]
    from reflex.policy.onnx_policy import OnnxPolicy

    chunk = OnnxPolicy(shipped).predict(np.zeros(14), {}, 0)
    assert chunk.shape == (50, 14) and np.all(np.isfinite(chunk))

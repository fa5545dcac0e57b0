"""Whole sessions through the runner with real connector processes: every way a user's command
can misbehave ends in exactly one safe stop that runs safe_stop_command, ``ok: false``, and an
error naming the command, the hook, the step and the problem. The shipped examples run clean."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, base_session, json_result, run_cli, write_session
from test_subprocess_connector import (
    SAFE_STOP_MARKER_CMD,
    marker_lines,
    robot_command,
    write_png,
    write_robot,
)

from reflex.errors import EXIT_CONFIG, EXIT_SESSION_FAILED, EXIT_SETUP, ConfigError
from reflex.runtime.session import run_session_file

YAM_NAMES = [f"{side}_{joint}" for side in ("left", "right")
             for joint in ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "gripper")]
YAM_LOWER = [-2.61799, 0.0, 0.0, -1.69297, -1.5708, -2.0944, 0.0] * 2
YAM_UPPER = [3.14159, 3.66519, 3.14159, 1.5708, 1.5708, 2.0944, 1.0] * 2
FAULT_STEP = 3
TIMEOUT_S = 0.5


def session_file(tmp_path: Path, protocol: str, env: dict[str, str], **hw: Any) -> Path:
    """An apply_actions session on the fake 14-D robot (camera 'top' from a PNG file)."""
    write_robot(tmp_path)
    write_png(tmp_path / "top.png")
    robot_env = {"DIM": "14", "IMAGE": str(tmp_path / "top.png"), "MARKER": str(tmp_path / "marker"),
                 "PIPE_LOG": str(tmp_path / "pipe.log"), "POS_FILE": str(tmp_path / "pos.json"),
                 "FAULT_STEP": str(FAULT_STEP), **env}
    config: dict[str, Any] = {
        "protocol": protocol,
        "cwd": str(tmp_path),
        "safe_stop_command": SAFE_STOP_MARKER_CMD,
        "command_timeout_s": TIMEOUT_S if env.get("FAULT") == "timeout" else 5.0,
        "env": robot_env,
    }
    if protocol == "per_call":
        config.update(observe_command=robot_command(), action_command=robot_command(),
                      state_names=YAM_NAMES, lower=YAM_LOWER, upper=YAM_UPPER,
                      cameras={"top": {"width": 128, "height": 96}})
    else:
        config.update(command=robot_command("--persistent"))
    config.update(hw)
    session = base_session(
        mode="apply_actions", control_rate_hz=50, max_steps=FAULT_STEP + 6,
        hardware={"kind": "subprocess", "config": config}, cameras={},
    )
    return write_session(tmp_path, session)


def assert_one_safe_stop(tmp_path: Path, result: Any) -> str:
    data = result.to_json()
    assert data["ok"] is False, data
    assert data["safeStops"] == 1, data
    assert data["safeStopFailures"] == [], data
    assert result.exit_code == EXIT_SESSION_FAILED
    stops = marker_lines(tmp_path)
    assert len(stops) == 1, stops  # safe_stop_command ran, exactly once
    assert stops[0]["op"] == "safe_stop" and stops[0]["mode"] == "apply_actions"
    assert len(data["errors"]) == 1, data["errors"]
    message: str = data["errors"][0]
    assert stops[0]["reason"] == message  # the script is told why
    return message


def fault_step(message: str, hook: str) -> int:
    """The step the runner names for the fault: FAULT_STEP for observe (every step observes); for
    apply the first step at or after it that applied (a step held on a loaded machine applies
    nothing, so the fake robot's fault fires on the next one)."""
    found = re.search(rf"\(hook '{hook}', step (\d+)\)", message)
    assert found, message
    step = int(found.group(1))
    assert step == FAULT_STEP if hook == "observe" else step >= FAULT_STEP, message
    return step


PER_CALL_FAULTS = [
    ("observe", "timeout", f"timed out after {TIMEOUT_S:g} s"),
    ("observe", "crash", "was killed by SIGSEGV"),
    ("observe", "exit", "exited with code 3 | stderr tail: fake robot: injecting exit at step 3 / "
                        "motor bus error on can0"),
    ("observe", "not_json", "stdout is not JSON (Expecting value at line 1 column 1): 'hello from the robot'"),
    ("observe", "partial", "stdout is partial JSON"),
    ("observe", "wrong_dim", "state has 13 values, expected 14"),
    ("observe", "nan", "NaN is not allowed"),
    ("observe", "missing", "missing key(s) state"),
    ("observe", "unexpected", "unexpected key(s) temperature"),
    ("observe", "future", "s in the future (wall-clock time?"),
    ("apply", "exit", "exited with code 3"),
    ("apply", "not_json", "stdout is not JSON"),
    ("apply", "timeout", f"timed out after {TIMEOUT_S:g} s"),
]


@pytest.mark.parametrize(
    ("hook", "fault", "problem"), PER_CALL_FAULTS, ids=[f"{h}-{f}" for h, f, _ in PER_CALL_FAULTS]
)
def test_per_call_misbehaviour_ends_in_one_safe_stop(tmp_path: Path, hook: str, fault: str, problem: str) -> None:
    path = session_file(tmp_path, "per_call", {"FAULT": fault, "FAULT_HOOK": hook})
    result = run_session_file(path, no_record=True)
    message = assert_one_safe_stop(tmp_path, result)
    field = "observe_command" if hook == "observe" else "action_command"
    step = fault_step(message, hook)
    assert f"{field} `{sys.executable} -S robot.py` (hook '{hook}', step {step})" in message
    assert problem in message
    assert message.startswith(f"{hook}: ")
    if hook == "observe":
        assert result.steps >= 1  # the loop ran before the fault
    else:  # every step before the failed one applied, except those the loop held
        assert result.applied_steps == step - result.loop["heldSteps"]


PERSISTENT_FAULTS = [
    ("observe", "exit", "the process exited with code 3 | stderr tail: fake robot: injecting exit at step 3 / "
                        "motor bus error on can0"),
    ("observe", "crash", "the process was killed by SIGSEGV"),
    ("observe", "not_json", "reply line is not JSON (Expecting value at line 1 column 1): 'hello from the robot' "
                            "(only JSON reply lines may go to stdout"),
    ("observe", "timeout", f"no reply within {TIMEOUT_S:g} s"),
    ("observe", "partial", "after a partial line '{\"state\": [0.1, 0.2'"),
    ("observe", "wrong_id", "(replies must echo the request id, one reply per request, in order)"),
    ("observe", "wrong_dim", "state has 13 values, expected 14"),
    ("observe", "nan", "NaN is not allowed"),
    ("observe", "unexpected", "unexpected key(s) temperature"),
    ("observe", "error_reply", "the connector reported an error: gripper overheated"),
    ("apply", "exit", "the process exited with code 3"),
    ("apply", "not_json", "reply line is not JSON"),
]
# Faults that leave the process trustworthy: the safe stop also goes through the pipe.
CONTRACT_ONLY = {"wrong_dim", "nan", "unexpected", "error_reply"}


@pytest.mark.parametrize(
    ("hook", "fault", "problem"), PERSISTENT_FAULTS, ids=[f"{h}-{f}" for h, f, _ in PERSISTENT_FAULTS]
)
def test_persistent_misbehaviour_ends_in_one_safe_stop(tmp_path: Path, hook: str, fault: str, problem: str) -> None:
    path = session_file(tmp_path, "persistent", {"FAULT": fault, "FAULT_HOOK": hook})
    result = run_session_file(path, no_record=True)
    message = assert_one_safe_stop(tmp_path, result)
    step = fault_step(message, hook)
    assert f"command `{sys.executable} -S robot.py --persistent` (hook '{hook}', step {step})" in message
    assert problem in message
    pipe_ops = [json.loads(line)["op"] for line in (tmp_path / "pipe.log").read_text().splitlines()]
    if fault in CONTRACT_ONLY:
        assert pipe_ops == ["enable", "safe_stop", "close"]
    else:
        assert pipe_ops == ["enable"]  # a broken process is killed, never trusted with the stop


def test_apply_actions_without_action_command_is_a_config_error(tmp_path: Path) -> None:
    data = yaml.safe_load(session_file(tmp_path, "per_call", {}).read_text())
    del data["hardware"]["config"]["action_command"]
    path = write_session(tmp_path, data)
    with pytest.raises(ConfigError, match="apply_actions needs a connector that can apply"):
        run_session_file(path, no_record=True)
    proc = run_cli(["connect", "--config", str(path), "--no-record", "--json"])
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert not marker_lines(tmp_path)


def test_a_handshake_mismatch_is_a_setup_error_and_nothing_moves(tmp_path: Path) -> None:
    data = yaml.safe_load(session_file(tmp_path, "persistent", {}).read_text())
    data["hardware"]["config"]["state_names"] = [*YAM_NAMES[:-1], "wrist"]
    path = write_session(tmp_path, data)
    result = run_session_file(path, no_record=True)
    assert result.exit_code == EXIT_SETUP
    assert result.safe_stops == 0 and result.steps == 0
    assert "handshake declares joints" in result.errors[0] and "wrist" in result.errors[0]
    assert not (tmp_path / "pipe.log").exists()  # never enabled, never asked to stop


def test_cli_reports_a_misbehaving_connector(tmp_path: Path) -> None:
    path = session_file(tmp_path, "persistent", {"FAULT": "exit", "FAULT_HOOK": "observe"})
    proc = run_cli(["connect", "--config", str(path), "--no-record", "--json"])
    assert proc.returncode == EXIT_SESSION_FAILED, proc.stderr
    data = json_result(proc)
    assert data["ok"] is False and data["safeStops"] == 1
    assert "hook 'observe', step 3" in data["errors"][0] and "motor bus error" in data["errors"][0]
    assert len(marker_lines(tmp_path)) == 1


@pytest.mark.parametrize("name", ["subprocess_bash.yaml", "subprocess_python.yaml"])
def test_shipped_examples_complete_a_session(tmp_path: Path, name: str) -> None:
    """Run the example configs as shipped, from a copy of the files a fresh clone has."""
    if shutil.which("bash") is None:
        pytest.skip("bash not installed")
    for rel in ("configs", "connectors"):
        shutil.copytree(REPO / rel, tmp_path / rel)
    proc = run_cli(["connect", "--config", str(tmp_path / "configs" / name), "--no-record", "--json"])
    data = json_result(proc)
    assert proc.returncode == 0, (data, proc.stderr[-2000:])
    assert data["ok"] is True and data["safeStops"] == 0 and data["errors"] == []
    # a loaded machine can make one observation arrive too late to use: that step holds, nothing else
    held = data["loop"]["heldSteps"]
    assert data["steps"] > 0 and data["appliedSteps"] + held == data["steps"] and held <= data["steps"] // 10
    assert data["cameras"]["top"]["newFrames"] >= data["steps"] - held


def test_a_slow_apply_of_a_connector_process_is_a_stall_in_the_result(tmp_path: Path) -> None:
    """Subprocess robots are measured through their apply calls too: one apply that takes a
    second is a gap beyond the session's bound, named in the result, one safe stop."""
    env = {"FAULT": "slow", "FAULT_HOOK": "apply", "SLOW_S": "1.0"}
    path = session_file(tmp_path, "persistent", env)
    data = yaml.safe_load(path.read_text())
    data["safety"] = {**(data.get("safety") or {}), "max_command_gap_ms": 500}
    path.write_text(yaml.safe_dump(data))
    result = run_session_file(path)
    out = result.to_json()
    assert out["stopReason"] == "incident:stall", out["errors"]
    stalls = out["loop"]["stalls"]
    assert stalls["count"] >= 1 and stalls["maxGapMs"] >= 1000 and stalls["boundMs"] == 500
    message = assert_one_safe_stop(tmp_path, result)
    assert "no command to the robot for" in message and "safety.max_command_gap_ms = 500" in message

"""The subprocess connector against real processes, without the runner: layouts, handshakes,
image encodings, timeouts, process groups, environment, safe stop paths."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.hardware.subprocess.config import SubprocessHardwareSpec
from reflex.hardware.subprocess.connector import SubprocessHardware
from reflex.hardware.subprocess.errors import ConnectorError

# A fake robot for both protocols: per call it answers the one request on stdin, persistent it
# serves lines until "close". Behaviour comes from environment variables so each test can make
# it misbehave in one precise way at one precise step (FAULT, FAULT_STEP, FAULT_HOOK): the first
# request of its hook at or after FAULT_STEP (every step observes; a step the loop held on a loaded
# machine applies nothing, so an apply fault then fires on the next step that applies).
FAKE_ROBOT = r'''
import json, os, signal, sys, time

FAULT = os.environ.get("FAULT", "")
FAULT_STEP = int(os.environ.get("FAULT_STEP", "3"))
FAULT_HOOK = os.environ.get("FAULT_HOOK", "observe")
DIM = int(os.environ.get("DIM", "14"))
IMAGE = os.environ.get("IMAGE", "")
POS_FILE = os.environ.get("POS_FILE", "")
PIPE_LOG = os.environ.get("PIPE_LOG", "")
if DIM == 14:
    arm = ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "gripper"]
    NAMES = [f"{s}_{j}" for s in ("left", "right") for j in arm]
    LOWER = [-2.61799, 0.0, 0.0, -1.69297, -1.5708, -2.0944, 0.0] * 2
    UPPER = [3.14159, 3.66519, 3.14159, 1.5708, 1.5708, 2.0944, 1.0] * 2
    HOME = [0.0] * 6 + [1.0] + [0.0] * 6 + [1.0]
else:
    NAMES = [f"j{i}" for i in range(DIM)]
    LOWER, UPPER, HOME = [-1.0] * DIM, [1.0] * DIM, [0.0] * DIM
memory = {"pos": list(HOME), "last": None}


def load():
    if POS_FILE and os.path.exists(POS_FILE):
        with open(POS_FILE) as f:
            memory.update(json.load(f))


def save():
    if POS_FILE:
        with open(POS_FILE, "w") as f:
            json.dump(memory, f)


def answer(req):
    op = req["op"]
    if PIPE_LOG and op in ("safe_stop", "close", "enable"):
        with open(PIPE_LOG, "a") as f:
            f.write(json.dumps(req) + "\n")
    if op == "hello":
        hs = {"v": int(os.environ.get("HS_V", "1")), "state_names": NAMES, "robot": "fake"}
        if os.environ.get("HS_LIMITS", "1") == "1":
            hs.update(lower=LOWER, upper=UPPER)
        if IMAGE:
            hs["cameras"] = [{"name": "top", "width": 128, "height": 96}]
        if os.environ.get("SHM_CHANNEL"):
            hs["cameras"] = [{"name": "wrist", "width": 16, "height": 12, "source": "shm",
                              "shm_name": os.environ["SHM_CHANNEL"]}]
        hs["can_apply"] = os.environ.get("HS_CAN_APPLY", "1") == "1"
        if os.environ.get("HS_CHUNKS"):
            hs["execute_chunks"] = True  # Reflex never sends whole chunks: refused
        return hs
    if op == "observe":
        obs = {"state": memory["pos"], "extras": {"last": memory["last"], "hook": os.environ.get("REFLEX_HOOK"),
               "step_env": os.environ.get("REFLEX_STEP"), "session": os.environ.get("REFLEX_SESSION_ID"),
               "cwd": os.getcwd(), "mine": os.environ.get("MINE")}}
        if IMAGE:
            obs["images"] = {"top": {"encoding": "path", "path": IMAGE}}
        return obs
    if op == "apply":
        memory["pos"] = req["action"]
        memory["last"] = {"op": op, "step": req["step"], "chunk_id": req["chunk_id"]}
        save()
    return {"ok": True}


def misbehave(req, persistent):
    """Returns the text to write instead of the real reply, or None."""
    hooks = (FAULT_HOOK,)
    step = req.get("step", FAULT_STEP)
    if not FAULT or req["op"] not in hooks or step is None or step < FAULT_STEP:
        return None
    sys.stderr.write(f"fake robot: injecting {FAULT} at step {step}\n")
    sys.stderr.flush()
    if FAULT == "timeout":
        time.sleep(60)
    if FAULT == "slow":  # one slow call (a stalled robot process), then the real answer
        time.sleep(float(os.environ.get("SLOW_S", "1.0")))
    if FAULT == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if FAULT == "exit":
        sys.stderr.write("motor bus error on can0\n")
        sys.exit(3)
    if FAULT == "not_json":
        return "hello from the robot"
    if FAULT == "partial":
        sys.stdout.write('{"state": [0.1, 0.2')
        sys.stdout.flush()
        sys.exit(0)
    good = answer(req)
    if FAULT == "wrong_dim":
        good["state"] = good["state"][:-1]
    if FAULT == "nan":
        good["state"] = [float("nan")] + good["state"][1:]  # json.dumps writes the NaN token
    if FAULT == "missing":
        good.pop("state", None)
    if FAULT == "unexpected":
        good["temperature"] = 41.5
    if FAULT == "error_reply":
        good = {"ok": False, "error": "gripper overheated"}
    if FAULT == "wrong_id":
        good["id"] = req["id"] + 1
        return json.dumps(good)
    if FAULT == "future":
        good["timestamp"] = time.time()
    good["id"] = req["id"]
    return json.dumps(good)


def main():
    persistent = "--persistent" in sys.argv
    if not persistent:
        load()
        req = json.loads(sys.stdin.read())
        text = misbehave(req, False)
        print(text if text is not None else json.dumps(answer(req)))
        return
    for line in sys.stdin:
        req = json.loads(line)
        text = misbehave(req, True)
        if text is None:
            reply = answer(req)
            reply["id"] = req["id"]
            text = json.dumps(reply)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        if req["op"] == "close":
            break


main()
'''

SAFE_STOP_MARKER_CMD = ["bash", "-c", 'cat >> "$MARKER"; echo >> "$MARKER"']


def write_robot(directory: Path) -> Path:
    path = directory / "robot.py"
    path.write_text(FAKE_ROBOT)
    return path


def write_png(path: Path, width: int = 128, height: int = 96) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(image).save(path)
    return image


def robot_command(*args: str) -> list[str]:
    return [sys.executable, "-S", "robot.py", *args]


def per_call_config(tmp_path: Path, dim: int = 3, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "protocol": "per_call",
        "cwd": str(tmp_path),
        "observe_command": robot_command(),
        "action_command": robot_command(),
        "safe_stop_command": SAFE_STOP_MARKER_CMD,
        "state_names": [f"j{i}" for i in range(dim)],
        "lower": [-1.0] * dim,
        "upper": [1.0] * dim,
        "command_timeout_s": 5.0,
        "env": {"DIM": str(dim), "POS_FILE": str(tmp_path / "pos.json"), "MARKER": str(tmp_path / "marker")},
    }
    config.update(extra)
    return config


def persistent_config(tmp_path: Path, dim: int = 3, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "protocol": "persistent",
        "cwd": str(tmp_path),
        "command": robot_command("--persistent"),
        "safe_stop_command": SAFE_STOP_MARKER_CMD,
        "command_timeout_s": 5.0,
        "env": {"DIM": str(dim), "MARKER": str(tmp_path / "marker"), "PIPE_LOG": str(tmp_path / "pipe.log")},
    }
    config.update(extra)
    return config


def build(tmp_path: Path, config: dict[str, Any], mode: str = "apply_actions") -> SubprocessHardware:
    write_robot(tmp_path)
    spec = SubprocessHardwareSpec.model_validate({"kind": "subprocess", "config": config})
    hw = spec.build(BuildContext(config_dir=tmp_path, mode=mode, session_id="sess-1"))
    assert isinstance(hw, SubprocessHardware)
    return hw


def marker_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "marker"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- per call --------------------------------------------------------------------------------


def test_per_call_round_trip_with_environment_and_chunk_context(tmp_path: Path) -> None:
    config = per_call_config(tmp_path)
    config["env"]["MINE"] = "yes"
    hw = build(tmp_path, config)
    hw.connect()
    assert hw.layout.names == ("j0", "j1", "j2")
    first = hw.read_state(step=0)
    assert first.position.tolist() == [0.0, 0.0, 0.0]
    assert first.extras["hook"] == "observe" and first.extras["step_env"] == "0"
    assert first.extras["session"] == "sess-1" and first.extras["mine"] == "yes"
    assert Path(first.extras["cwd"]) == tmp_path.resolve()
    hw.enable()
    hw.apply(np.array([0.1, -0.2, 0.3]), step=0, chunk_id=7, t_target=time.monotonic())
    state = hw.read_state(step=1)
    assert state.position.tolist() == [0.1, -0.2, 0.3]
    assert state.extras["last"] == {"op": "apply", "step": 0, "chunk_id": 7}
    hw.safe_stop("operator test")
    (stop,) = marker_lines(tmp_path)
    assert stop["op"] == "safe_stop" and stop["reason"] == "operator test" and stop["step"] == 1
    assert stop["mode"] == "apply_actions" and stop["session_id"] == "sess-1"
    hw.close()


def test_state_may_be_a_name_mapping_and_missing_joints_are_named(tmp_path: Path) -> None:
    script = tmp_path / "obs.py"
    script.write_text(
        "import json, os\n"
        "state = {'j0': 0.5, 'j1': -0.5}\n"
        "if os.environ['REFLEX_STEP'] not in ('', '0'):\n"
        "    state.pop('j1'); state['elbow'] = 1.0\n"
        "print(json.dumps({'state': state, 'velocity': [0.0, 1.0]}))\n"
    )
    config = per_call_config(tmp_path, dim=2, observe_command=[sys.executable, "-S", "obs.py"])
    hw = build(tmp_path, config, mode="dry_run")
    hw.connect()
    state = hw.read_state(step=0)
    assert state.position.tolist() == [0.5, -0.5]
    assert state.velocity is not None and state.velocity.tolist() == [0.0, 1.0]
    with pytest.raises(ConnectorError) as info:
        hw.read_state(step=1)
    message = str(info.value)
    assert "missing joint(s) ['j1']" in message and "unexpected joint(s) ['elbow']" in message
    assert "observe_command" in message and "obs.py" in message and "step 1" in message
    hw.close()


def _image_payloads(tmp_path: Path, image: np.ndarray) -> dict[str, dict[str, Any]]:
    from PIL import Image

    def encoded(fmt: str) -> str:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=fmt)
        return base64.b64encode(buf.getvalue()).decode()

    Image.fromarray(image).save(tmp_path / "frame.png")
    return {
        "png": {"encoding": "png", "data": encoded("PNG")},
        "jpeg": {"encoding": "jpeg", "data": encoded("JPEG")},
        "rgb8": {"encoding": "rgb8", "data": base64.b64encode(image.tobytes()).decode()},
        "path": {"encoding": "path", "path": "frame.png"},
    }


def _observe_script(tmp_path: Path, payload: dict[str, Any], timestamp: str = "None") -> list[str]:
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    (tmp_path / "obs.py").write_text(
        "import json, time\n"
        "payload = json.load(open('payload.json'))\n"
        f"ts = {timestamp}\n"
        "obs = {'state': [0.0], 'images': {'top': payload}}\n"
        "if ts is not None:\n"
        "    obs['timestamp'] = ts\n"
        "print(json.dumps(obs))\n"
    )
    return [sys.executable, "-S", "obs.py"]


@pytest.mark.parametrize("encoding", ["png", "jpeg", "rgb8", "path"])
def test_every_image_encoding_becomes_an_rgb_frame(tmp_path: Path, encoding: str) -> None:
    image = np.random.default_rng(1).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    image[:, :8] = (200, 30, 30)  # a flat region survives JPEG
    payload = _image_payloads(tmp_path, image)[encoding]
    payload["timestamp"] = 1.0
    command = _observe_script(tmp_path, payload, timestamp="time.monotonic()")
    config = per_call_config(tmp_path, dim=1, observe_command=command,
                             cameras={"top": {"width": 16, "height": 12}})
    hw = build(tmp_path, config, mode="dry_run")
    hw.connect()
    state = hw.read_state(step=0)
    frame = hw.cameras()["top"].latest()
    assert frame is not None and frame.image.shape == (12, 16, 3) and frame.image.dtype == np.uint8
    assert frame.t_capture == 1.0  # the image's own capture time, not the state's
    assert state.t_capture > 1.0
    if encoding == "jpeg":
        mean = frame.image[:, :6].reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - (200, 30, 30)).max() < 10  # lossy, but RGB (not BGR) and close
    else:
        assert np.array_equal(frame.image, image)
    assert not frame.image.flags.writeable
    hw.close()


@pytest.mark.parametrize(
    ("payload_of", "expected"),
    [
        (lambda p: {**p["jpeg"], "encoding": "png"}, "declared PNG but the bytes are JPEG"),
        (lambda p: {"encoding": "png", "data": "not base64!!"}, "not valid base64"),
        (lambda p: {"encoding": "rgb8", "data": base64.b64encode(b"abc").decode()}, "rgb8 data has 3 bytes"),
        (lambda p: {"encoding": "path", "path": "nope.png"}, "cannot read image file"),
    ],
)
def test_bad_images_are_contract_errors(tmp_path: Path, payload_of: Any, expected: str) -> None:
    image = np.zeros((12, 16, 3), dtype=np.uint8)
    command = _observe_script(tmp_path, payload_of(_image_payloads(tmp_path, image)))
    config = per_call_config(tmp_path, dim=1, observe_command=command,
                             cameras={"top": {"width": 16, "height": 12}})
    hw = build(tmp_path, config, mode="dry_run")
    with pytest.raises(SetupError) as info:
        hw.connect()  # the read-only probe at connect catches it before any motion
    assert expected in str(info.value) and "images.top" in str(info.value)
    hw.close()


def test_wrong_image_size_and_undeclared_cameras_are_refused(tmp_path: Path) -> None:
    image = np.zeros((12, 16, 3), dtype=np.uint8)
    payload = _image_payloads(tmp_path, image)["png"]
    command = _observe_script(tmp_path, payload)
    wrong_size = per_call_config(tmp_path, dim=1, observe_command=command,
                                 cameras={"top": {"width": 32, "height": 12}})
    with pytest.raises(SetupError, match=r"image is 16x12 \(WxH\), declared 32x12"):
        build(tmp_path, wrong_size, mode="dry_run").connect()
    undeclared = per_call_config(tmp_path, dim=1, observe_command=command)
    with pytest.raises(SetupError, match="camera 'top' was not declared"):
        build(tmp_path, undeclared, mode="dry_run").connect()


def test_wall_clock_timestamps_are_caught(tmp_path: Path) -> None:
    command = _observe_script(tmp_path, {"encoding": "path", "path": "frame.png"}, timestamp="time.time()")
    _image_payloads(tmp_path, np.zeros((12, 16, 3), dtype=np.uint8))
    config = per_call_config(tmp_path, dim=1, observe_command=command,
                             cameras={"top": {"width": 16, "height": 12}})
    with pytest.raises(SetupError, match=r"in the future \(wall-clock time"):
        build(tmp_path, config, mode="dry_run").connect()


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A script whose child keeps stdout open must not hang Reflex, and the child must die."""
    (tmp_path / "slow.sh").write_text(
        "sleep 300 &\n"
        "echo $! > child.pid\n"
        "wait\n"
    )
    config = per_call_config(tmp_path, dim=1, observe_command="bash slow.sh", command_timeout_s=0.5)
    hw = build(tmp_path, config, mode="dry_run")
    with pytest.raises(SetupError) as info:
        hw.connect()
    assert "observe_command `bash slow.sh` (hook 'observe'" in str(info.value)
    assert "timed out after 0.5 s" in str(info.value)
    child = int((tmp_path / "child.pid").read_text())
    for _ in range(100):
        if not _alive(child):
            break
        time.sleep(0.02)
    assert not _alive(child), "the script's child survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_shell_mode_and_missing_programs(tmp_path: Path) -> None:
    config = per_call_config(tmp_path, dim=2, shell=True,
                             observe_command="echo '{\"state\": [1, 2]}' | cat")
    hw = build(tmp_path, config, mode="dry_run")
    hw.connect()
    assert hw.read_state(step=0).position.tolist() == [1.0, 2.0]
    hw.close()
    missing = per_call_config(tmp_path, dim=2, observe_command="no-such-robot-binary --observe")
    with pytest.raises(SetupError, match="no-such-robot-binary not found"):
        build(tmp_path, missing, mode="dry_run").connect()


def test_setup_and_teardown_commands_run_once(tmp_path: Path) -> None:
    config = per_call_config(
        tmp_path, dim=3,
        setup_command=["bash", "-c", 'cat > setup.json'],
        teardown_command=["bash", "-c", 'cat > teardown.json'],
    )
    hw = build(tmp_path, config, mode="dry_run")
    hw.connect()
    assert json.loads((tmp_path / "setup.json").read_text())["op"] == "setup"
    hw.close()
    hw.close()  # idempotent
    assert json.loads((tmp_path / "teardown.json").read_text())["op"] == "teardown"


def test_actions_are_refused_before_enable_and_after_a_safe_stop(tmp_path: Path) -> None:
    hw = build(tmp_path, per_call_config(tmp_path))
    hw.connect()
    with pytest.raises(ConnectorError, match="action before enable"):
        hw.apply(np.zeros(3), step=0)
    hw.enable()
    hw.apply(np.zeros(3), step=0)
    with pytest.raises(ConnectorError, match="refusing action of shape"):
        hw.apply(np.array([0.0, np.nan, 0.0]), step=1)
    hw.safe_stop("test")
    with pytest.raises(ConnectorError, match="action before enable"):
        hw.apply(np.zeros(3), step=2)
    hw.close()


def test_persistent_handshake_gives_layout_and_cameras(tmp_path: Path) -> None:
    write_png(tmp_path / "top.png")
    config = persistent_config(tmp_path, dim=14)
    config["env"]["IMAGE"] = str(tmp_path / "top.png")
    hw = build(tmp_path, config)
    hw.connect()
    assert hw.layout.dim == 14 and hw.layout.names[0] == "left_joint1"
    assert hw.can_apply
    assert hw.handshake is not None and hw.handshake.robot == "fake"
    assert set(hw.cameras()) == {"top"}
    hw.enable()
    hw.apply(np.zeros(14), step=0, chunk_id=2)
    assert hw.read_state(step=1).extras["last"] == {"op": "apply", "step": 0, "chunk_id": 2}
    frame = hw.cameras()["top"].latest()
    assert frame is not None and frame.image.shape == (96, 128, 3)
    hw.safe_stop("because")
    hw.close()
    ops = [json.loads(line)["op"] for line in (tmp_path / "pipe.log").read_text().splitlines()]
    assert ops == ["enable", "safe_stop", "close"]  # the pipe got the safe stop...
    assert len(marker_lines(tmp_path)) == 1  # ...and safe_stop_command ran too


@pytest.mark.parametrize(
    ("change", "env", "expected"),
    [
        ({"state_names": ["a", "b", "c"]}, {}, "handshake declares joints ['j0', 'j1', 'j2']"),
        ({"state_names": ["j0", "j1", "j2"], "lower": [-1, -1, -2], "upper": [1, 1, 1]}, {},
         "handshake lower limits differ from hardware.config.lower for ['j2']"),
        ({"cameras": {"top": {"width": 128, "height": 96}}}, {}, "hardware.config.cameras.top is not in the handshake"),
        ({}, {"HS_V": "2"}, "handshake declares contract version 2"),
        ({}, {"HS_CHUNKS": "1"}, "execute_chunks"),
        ({}, {"HS_LIMITS": "0"}, "apply_actions needs joint limits"),
        ({}, {"HS_CAN_APPLY": "0"}, "can_apply: false"),
    ],
)
def test_handshake_problems_are_setup_errors(
    tmp_path: Path, change: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    config = persistent_config(tmp_path, **change)
    config["env"].update(env)
    hw = build(tmp_path, config)
    with pytest.raises(SetupError) as info:
        hw.connect()
    assert expected in str(info.value)
    hw.close()


def test_handshake_without_limits_is_fine_for_dry_run(tmp_path: Path) -> None:
    config = persistent_config(tmp_path)
    config["env"]["HS_LIMITS"] = "0"
    hw = build(tmp_path, config, mode="dry_run")
    hw.connect()
    assert not hw.can_apply
    assert hw.read_state(step=0).position.tolist() == [0.0, 0.0, 0.0]
    hw.close()


def test_a_dead_process_without_safe_stop_command_is_a_failed_safe_stop(tmp_path: Path) -> None:
    config = persistent_config(tmp_path)
    del config["safe_stop_command"]
    config["env"].update({"FAULT": "exit", "FAULT_STEP": "1"})
    hw = build(tmp_path, config)
    hw.connect()
    hw.read_state(step=0)
    with pytest.raises(ConnectorError, match="exited with code 3"):
        hw.read_state(step=1)
    with pytest.raises(RuntimeError, match="safe stop impossible: the connector process is not running"):
        hw.safe_stop("observe failed")
    hw.close()


def test_close_ends_the_process_cleanly(tmp_path: Path) -> None:
    hw = build(tmp_path, persistent_config(tmp_path), mode="dry_run")
    hw.connect()
    process = hw._process
    assert process is not None and process.healthy
    hw.close()
    assert not process.healthy
    assert process.wait_exit(1.0) == 0


def test_shm_cameras_declared_in_the_handshake_are_read_from_shared_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reflex.shm.writer import ShmWriter

    monkeypatch.setenv("REFLEX_SHM_DIR", str(tmp_path / "shm"))
    image = np.random.default_rng(5).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    with ShmWriter.create("wrist_test", 16, 12, watchdog=False) as writer:
        writer.write(image, t_capture=time.monotonic())
        config = persistent_config(tmp_path)
        config["env"]["SHM_CHANNEL"] = "wrist_test"
        hw = build(tmp_path, config, mode="dry_run")
        hw.connect()
        camera = hw.cameras()["wrist"]
        frame = camera.latest()
        assert frame is not None and np.array_equal(frame.image, image)
        hw.close()

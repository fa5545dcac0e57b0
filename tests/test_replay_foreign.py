"""Datasets Reflex did not record: open-loop evaluation with ``reflex replay`` and ``hardware.kind: replay``.

The LeRobot dataset is written by LeRobot's own writer and read back by LeRobot's own loader for
the expected figures; the MCAP by the plain ``mcap`` writer with Foxglove schemas. Expected
per-joint figures are computed here with numpy from those independent reads and the demo policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO, write_session
from foreign_datasets import JOINTS, action_at, image_at, state_at, task_of, write_lerobot, write_mcap
from replay_testutil import replay_cli
from test_record_support import lerobot_load, require_readers

from reflex.replay.readers import read_recording
from reflex.runtime.session import run_session_file
from reflex.targets.export_manifest import resolve_export_dir

FPS = 50  # the demo policy's action step is 0.02 s


@pytest.fixture(scope="module")
def lerobot_ds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    require_readers()
    work = tmp_path_factory.mktemp("foreign_lerobot")
    root = write_lerobot(work / "ds", work, episodes=2, frames=12, fps=FPS)
    return root, lerobot_load(root, work)


@pytest.fixture(scope="module")
def mcap_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mcap(tmp_path_factory.mktemp("foreign_mcap") / "teleop.mcap", frames=20, fps=FPS)


def policy_chunks(states: np.ndarray, images: np.ndarray, steps: list[int]) -> np.ndarray:
    from reflex.policy.onnx_policy import OnnxPolicy

    policy = OnnxPolicy(resolve_export_dir("builtin:demo", REPO))
    return policy.predict_batch(states.astype(np.float64), {"top": images}, steps)


def expected_figures(pred: np.ndarray, demo: np.ndarray) -> dict[str, dict[str, float]]:
    """Per joint over (frames, horizon): MSE, max abs, cosine of the joint's whole sequence."""
    out = {}
    for j, name in enumerate(JOINTS):
        p, d = pred[:, :, j].ravel(), demo[:, :, j].ravel()
        cos = float(p @ d / (np.linalg.norm(p) * np.linalg.norm(d)))
        out[name] = {"mse": float(np.mean((p - d) ** 2)), "maxAbs": float(np.max(np.abs(p - d))), "cosine": cos}
    return out


def assert_figures(per_joint: dict[str, Any], expected: dict[str, dict[str, float]], rtol: float) -> None:
    assert list(per_joint) == JOINTS
    for name, want in expected.items():
        for key, value in want.items():
            rel = max(rtol, 2e-9) if key == "cosine" else rtol  # the report rounds cosine to 9 digits
            assert per_joint[name][key] == pytest.approx(value, rel=rel, abs=1e-12), (name, key)


def lerobot_expectation(
    items: dict[str, Any], camera_key: str, horizon: int, every: int
) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Per episode (policy chunks, demonstrated windows) from the loader's items; and pooled."""
    arrays = items["arrays"]
    episodes = arrays["episode_index"].ravel()
    per_episode = {}
    for ep in sorted(set(episodes.tolist())):
        rows = np.flatnonzero(episodes == ep)
        frames = arrays["frame_index"].ravel()[rows]
        assert list(frames) == list(range(len(rows)))
        scored = list(range(0, len(rows) - horizon + 1, every))
        states = arrays["observation.state"][rows][scored]
        images = arrays[camera_key][rows][scored]
        pred = policy_chunks(states, images, scored)[:, :horizon]
        actions = arrays["action"][rows].astype(np.float64)
        demo = np.stack([actions[k : k + horizon] for k in scored])
        per_episode[int(ep)] = (pred, demo)
    pooled_pred = np.concatenate([p for p, _ in per_episode.values()])
    pooled_demo = np.concatenate([d for _, d in per_episode.values()])
    return per_episode, pooled_pred, pooled_demo


@pytest.mark.parametrize("camera", ["image", "video"])
def test_replay_scores_the_demo_policy_against_a_lerobot_written_dataset(
    lerobot_ds: tuple[Path, dict[str, Any]], camera: str
) -> None:
    root, items = lerobot_ds
    assert items["num_episodes"] == 2 and items["tasks"][0] == task_of(0)
    horizon, every = 4, 2
    args = [str(root), "--target", "builtin:demo", "--horizon", str(horizon), "--every", str(every)]
    if camera == "image":  # the PNG image feature feeds the policy's 'top' camera: exact pixels
        args += ["--map", "camera.top=observation.images.wrist"]
        key, rtol = "observation.images.wrist", 1e-9
    else:  # the default mapping: observation.images.top, an H.264 video decoded by PyAV here and
        key, rtol = "observation.images.top", 1e-6  # by torchcodec in LeRobot's loader
    code, payload, output = replay_cli(*args)
    assert code == 0, output
    per_episode, pooled_pred, pooled_demo = lerobot_expectation(items, key, horizon, every)
    assert [e["episode"] for e in payload["episodes"]] == [0, 1]
    for entry in payload["episodes"]:
        pred, demo = per_episode[entry["episode"]]
        assert entry["demonstration"] == {"horizon": horizon, "every": every, "frames": 12, "framesScored": 5}
        assert entry["chunks"]["replayed"] == 5 and entry["chunks"]["horizonCompared"] == horizon
        assert entry["determinism"]["status"] == "demonstration"
        assert_figures(entry["chunkErrors"]["perJoint"], expected_figures(pred, demo), rtol)
    assert_figures(payload["overall"]["chunks"]["perJoint"], expected_figures(pooled_pred, pooled_demo), rtol)


def test_fail_on_and_episode_sampling_work_on_a_dataset(lerobot_ds: tuple[Path, dict[str, Any]]) -> None:
    root, _ = lerobot_ds
    code, payload, _ = replay_cli(str(root), "--target", "builtin:demo", "--horizon", "3", "--every-episode", "2",
                                  "--fail-on", "max_abs=1e-3")
    assert code == 1 and [e["episode"] for e in payload["episodes"]] == [0]
    assert payload["violations"] and payload["episodes"][0]["demonstration"]["framesScored"] == 10
    code, payload, _ = replay_cli(str(root), "--target", "builtin:demo", "--horizon", "3", "--fail-on", "max_abs=10")
    assert code == 0 and not payload["violations"]


def test_a_wrong_mapping_is_a_clear_input_error(lerobot_ds: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, _ = lerobot_ds
    code, payload, output = replay_cli(str(root), "--target", "builtin:demo", "--map", "state=observation.joints")
    assert code == 2, output
    assert "no feature 'observation.joints' for the state" in payload["errors"][0]
    assert "observation.state" in payload["errors"][0]  # the features there are listed
    code, payload, _ = replay_cli(str(root), "--target", "builtin:demo", "--map", "camera.top=action")
    assert code == 2 and "'action' is not an image or video feature" in payload["errors"][0]
    mapping = tmp_path / "map.yaml"
    mapping.write_text("state: observation.state\ncamerass: {}\n")
    code, payload, _ = replay_cli(str(root), "--target", "builtin:demo", "--map", str(mapping))
    assert code == 2 and "camerass" in payload["errors"][0]


def test_replay_scores_the_demo_policy_against_a_foxglove_mcap(mcap_file: Path) -> None:
    horizon = 5
    code, payload, output = replay_cli(str(mcap_file), "--target", "builtin:demo", "--horizon", str(horizon))
    assert code == 0, output
    (entry,) = payload["episodes"]
    assert entry["format"] == "mcap" and entry["demonstration"]["framesScored"] == 16
    scored = list(range(16))
    states = np.stack([state_at(0, k) for k in scored])
    images = np.stack([image_at(0, k, "top") for k in scored])  # PNG: exact pixels
    pred = policy_chunks(states, images, scored)[:, :horizon]
    demo = np.stack([[action_at(0, k + i) for i in range(horizon)] for k in scored])
    assert_figures(entry["chunkErrors"]["perJoint"], expected_figures(pred, demo), 1e-9)
    # the RawImage camera reads back exactly, named after its topic
    episode = read_recording(mcap_file)[0]
    assert episode.meta.camera_names == ("top", "wrist") and episode.meta.joint_names == tuple(JOINTS)
    np.testing.assert_array_equal(episode.steps[3].frames["wrist"].load(), image_at(0, 3, "wrist"))


def test_an_mcap_with_unnamed_action_topics_asks_for_a_mapping(tmp_path: Path) -> None:
    path = write_mcap(tmp_path / "odd.mcap", frames=8, fps=FPS, action_topic="/leader")
    code, payload, _ = replay_cli(str(path), "--target", "builtin:demo", "--horizon", "2")
    assert code == 2 and "no demonstrated actions" in payload["errors"][0]
    code, payload, output = replay_cli(str(path), "--target", "builtin:demo", "--horizon", "2",
                                       "--map", "action=/leader", "--map", "task=wave")
    assert code == 0, output
    assert payload["episodes"][0]["demonstration"]["framesScored"] == 7


def replay_hw(recording: Path, tmp_path: Path, **config: Any) -> Any:
    session = {
        # at_end: stop: the session ends cleanly when the data runs out, however late a loaded
        # machine starts the loop (the datasets are a fraction of a second long)
        "mode": "dry_run", "control_rate_hz": FPS, "max_steps": 0, "task": "evaluate",
        "target": {"kind": "local", "export": "builtin:demo"},
        "hardware": {"kind": "replay", "config": {"recording": str(recording), "at_end": "stop", **config}},
        "record": {"formats": ["jsonl"], "image_encoding": "lossless"},  # served pixels compared exactly
    }
    out = tmp_path / "session"
    result = run_session_file(write_session(tmp_path, session), record_dir=str(out))
    assert result.ok, result.errors
    assert result.stop_reason == "source_exhausted" and result.steps >= 1
    return read_recording(out, "jsonl")[0]


def test_replay_hardware_drives_a_session_from_a_lerobot_dataset(
    lerobot_ds: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _ = lerobot_ds
    new = replay_hw(root, tmp_path, episode=1)
    served = [s.state for s in new.steps]
    recorded = [state_at(1, k).astype(np.float32).astype(np.float64) for k in range(12)]
    index = [next(k for k, r in enumerate(recorded) if np.array_equal(r, s)) for s in served]
    # episode 1's states (each served state is one of them), in recorded order; which one a tick
    # gets follows the clock (a loaded machine skips ahead), so the exact pairing is not asserted
    assert index == sorted(index)
    assert new.meta.camera_names == ("top", "wrist")
    frame = next(f for s in new.steps for name, f in s.frames.items() if name == "wrist")
    np.testing.assert_array_equal(frame.load(), image_at(1, frame.seq, "wrist"))


def test_replay_hardware_drives_a_session_from_a_mapped_mcap(mcap_file: Path, tmp_path: Path) -> None:
    new = replay_hw(mcap_file, tmp_path, mapping={"cameras": {"top": "/camera/top/image"}})
    index = [next(k for k in range(20) if np.array_equal(state_at(0, k), s.state)) for s in new.steps]
    assert index == sorted(index)
    assert new.meta.camera_names == ("top",)
    frame = next(f for s in new.steps for f in s.frames.values())
    np.testing.assert_array_equal(frame.load(), image_at(0, frame.seq, "top"))

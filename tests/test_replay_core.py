"""``reflex replay`` on JSONL recordings made by ``reflex connect``: determinism, diffs, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import base_session, json_result, run_cli, write_session
from replay_testutil import SAMPLE, replay_cli, variant_export

from reflex.replay.runner import ReplayOptions, replay

JOINTS = (
    "left_joint1", "left_joint2", "left_joint3", "left_joint4", "left_joint5", "left_joint6", "left_gripper",
    "right_joint1", "right_joint2", "right_joint3", "right_joint4", "right_joint5", "right_joint6", "right_gripper",
)


def _changed_normalisation(manifest: dict[str, Any]) -> None:
    action = manifest["normalization"]["action"]
    action["std"][JOINTS.index("right_joint3")] *= 1.3
    action["mean"][JOINTS.index("left_joint5")] += 0.02


def _episode(payload: dict[str, Any]) -> dict[str, Any]:
    assert len(payload["episodes"]) == 1
    episode: dict[str, Any] = payload["episodes"][0]
    return episode


def test_connect_recording_replays_to_within_1e_5(tmp_path: Path) -> None:
    """Real ``reflex connect`` subprocess records; real ``reflex replay`` subprocess reproduces."""
    session = base_session(mode="apply_actions", control_rate_hz=100, max_steps=160,
                           record={"formats": ["jsonl"], "image_encoding": "lossless"})
    config = write_session(tmp_path, session)
    out = tmp_path / "rec"
    made = run_cli(["connect", "--config", str(config), "--record", str(out), "--json"])
    assert made.returncode == 0, made.stderr
    proc = run_cli(["replay", str(out), "--target", "builtin:demo", "--json",
                    "--fail-on", "reproduce", "--fail-on", "max_abs=1e-5,step_max_abs=1e-5"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json_result(proc)
    episode = _episode(payload)
    assert payload["ok"] and payload["violations"] == []
    assert episode["determinism"]["status"] == "reproduced"
    assert episode["determinism"]["maxAbs"] <= 1e-5
    assert episode["chunks"]["recorded"] == episode["chunks"]["replayed"] >= 2
    assert episode["chunks"]["horizonCompared"] == 50
    assert episode["chunkErrors"]["overall"]["maxAbs"] <= 1e-5
    assert episode["chunkErrors"]["overall"]["count"] == episode["chunks"]["replayed"] * 50 * 14
    executed = episode["executed"]
    assert executed["compared"] >= 150 and executed["errors"]["overall"]["maxAbs"] <= 1e-5
    assert payload["timing"]["steps"] == 160


def test_batched_and_one_by_one_give_the_same_chunks() -> None:
    batched = replay([SAMPLE], "builtin:demo", ReplayOptions(fmt="jsonl", batch=True))
    single = replay([SAMPLE], "builtin:demo", ReplayOptions(fmt="jsonl", batch=False))
    a, b = batched.results[0], single.results[0]
    assert len(a.replayed) == len(b.replayed) >= 3
    for chunk_id, chunk in a.replayed.items():
        np.testing.assert_allclose(chunk, b.replayed[chunk_id], atol=1e-6, rtol=0)
    assert a.determinism.status == b.determinism.status == "reproduced"


def test_a_changed_export_trips_fail_on_and_names_the_worst_joints(tmp_path: Path) -> None:
    export = variant_export(tmp_path, "changed", _changed_normalisation)
    code, payload, output = replay_cli(str(SAMPLE), "--target", str(export), "--fail-on", "max_abs=1e-3")
    assert code == 1, output
    episode = _episode(payload)
    per_joint = episode["chunkErrors"]["perJoint"]
    changed = {"right_joint3", "left_joint5"}
    assert all(per_joint[j]["maxAbs"] > 1e-3 for j in changed)
    assert all(per_joint[j]["maxAbs"] < 1e-9 for j in JOINTS if j not in changed)
    worst = [w["joint"] for w in episode["chunkErrors"]["worstJoints"]]
    assert set(worst) == changed
    assert worst[0] == "right_joint3"  # std x1.3 moves it by far the most
    # Same model.onnx and seed: a real mismatch, and the report says what may have changed.
    assert episode["determinism"]["status"] == "mismatch"
    assert "normalisation" in episode["determinism"]["reasons"][0]
    (violation,) = payload["violations"]
    assert violation["threshold"] == "max_abs=0.001" and "right_joint3" in violation["message"]
    assert payload["ok"] is False and payload["exitCode"] == 1


def test_text_summary_names_the_worst_joints_and_the_verdict(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reflex.cli.app import app

    export = variant_export(tmp_path, "changed", _changed_normalisation)
    result = CliRunner().invoke(app, ["replay", str(SAMPLE), "-t", str(export), "--fail-on", "cosine=0.99999"])
    assert result.exit_code == 1
    assert "worst joints (max abs): right_joint3" in result.output
    assert "FAIL (1 threshold(s) tripped)" in result.output and "cosine" in result.output
    passing = CliRunner().invoke(app, ["replay", str(SAMPLE), "-t", "builtin:demo", "--fail-on", "max_abs=1e-5"])
    assert passing.exit_code == 0 and "PASS (max_abs=1e-05)" in passing.output


def test_another_seed_is_a_comparison_not_a_mismatch() -> None:
    code, payload, _ = replay_cli(str(SAMPLE), "--target", "builtin:demo", "--seed", "8")
    assert code == 0
    det = _episode(payload)["determinism"]
    assert det["status"] == "different_model" and det["expected"] is False
    assert any("different seed: recorded 7, replayed 8" in r for r in det["reasons"])
    # only the 1e-3 noise term differs
    assert 0 < _episode(payload)["chunkErrors"]["overall"]["maxAbs"] < 0.02


def test_a_recording_without_its_seed_cannot_be_verified(tmp_path: Path) -> None:
    copy = tmp_path / "noseed"
    shutil.copytree(SAMPLE / "jsonl", copy / "jsonl")
    lines = (copy / "jsonl" / "steps.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    header["target"]["seed"] = None
    (copy / "jsonl" / "steps.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo", "--fail-on", "reproduce")
    assert code == 1
    det = _episode(payload)["determinism"]
    assert det["status"] == "cannot_verify" and det["reproduced"] is None
    assert "lacks the seed" in det["reasons"][0]
    assert "not reproduced (cannot_verify)" in payload["violations"][0]["message"]


def test_a_target_block_in_yaml_works_like_an_export_dir(tmp_path: Path) -> None:
    # a whole session file: its target block is used
    code, payload, out = replay_cli(str(SAMPLE), "--target", str(SAMPLE.parent / "sim_demo.yaml"))
    assert code == 0, out
    assert _episode(payload)["determinism"]["status"] == "reproduced"
    block = tmp_path / "target.yaml"
    block.write_text("kind: local\nexport: builtin:demo\nseed: 8\n")
    code, payload, _ = replay_cli(str(SAMPLE), "--target", str(block))
    assert code == 0
    assert _episode(payload)["target"]["seed"] == 8  # a pinned seed wins over the recorded one
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: local\nexprot: builtin:demo\n")
    code, payload, _ = replay_cli(str(SAMPLE), "--target", str(bad))
    assert code == 2
    assert any("target.exprot (line 2)" in e for e in payload["errors"][0].splitlines())


def _broken_copy(tmp_path: Path, edit: Any) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(SAMPLE / "jsonl", copy / "jsonl")
    path = copy / "jsonl" / "steps.jsonl"
    path.write_text(edit(path.read_text()))
    return copy


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        ("half-written last line", lambda t: t[: t.rindex('{"type":"end"')] + '{"type":"st', "truncated"),
        ("no end line", lambda t: t[: t.rindex('{"type":"end"')], "truncated: it has no 'end' line"),
        ("garbage mid-file", lambda t: t.replace('{"type":"step","step":10,', '{"type":"step""step":10,', 1),
         "not valid JSON"),
        ("short state", lambda t: t.replace('"state":[', '"state":[1.0,', 1), "step.state must have 14 numbers"),
        ("no header", lambda t: t.split("\n", 1)[1], "first line must be the header"),
        ("empty", lambda t: "", "empty file"),
    ],
)
def test_corrupt_or_truncated_jsonl_is_a_clear_error(tmp_path: Path, name: str, edit: Any, expected: str) -> None:
    broken = _broken_copy(tmp_path, edit)
    code, payload, _ = replay_cli(str(broken), "--target", "builtin:demo")
    assert code == 2, name
    (message,) = payload["errors"]
    assert expected in message and "steps.jsonl" in message


def test_partial_replays_the_complete_part_of_a_truncated_recording(tmp_path: Path) -> None:
    broken = _broken_copy(tmp_path, lambda t: t[: t.index('{"type":"step","step":60,')] + '{"type":"step","st')
    code, payload, _ = replay_cli(str(broken), "--target", "builtin:demo", "--partial")
    assert code == 0
    episode = _episode(payload)
    assert episode["complete"] is False and episode["steps"] == 60
    assert any("truncated" in n for n in episode["notes"])
    assert episode["determinism"]["status"] == "reproduced"


def test_missing_and_corrupt_images_name_the_file(tmp_path: Path) -> None:
    copy = _broken_copy(tmp_path, lambda t: t)
    images = sorted((copy / "jsonl" / "images" / "top").glob("*.png"))
    images[0].unlink()
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "is missing" in payload["errors"][0] and images[0].name in payload["errors"][0]
    images[0].write_bytes(b"\x89PNG not really")
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "is corrupt" in payload["errors"][0]


def test_images_off_recording_says_the_policy_input_is_missing(tmp_path: Path) -> None:
    session = base_session(control_rate_hz=100, max_steps=40, record={"formats": ["jsonl"], "images": False})
    from reflex.runtime.session import run_session_file

    out = tmp_path / "noimages"
    assert run_session_file(write_session(tmp_path, session), record_dir=str(out)).ok
    code, payload, _ = replay_cli(str(out), "--target", "builtin:demo")
    assert code == 2 and "recorded with images off" in payload["errors"][0]
    # a policy that reads no image replays it fine
    code, payload, _ = replay_cli(str(out), "--target", "builtin:demo_state_only")
    assert code == 0 and _episode(payload)["chunks"]["replayed"] >= 1


def test_input_and_target_errors_have_documented_exit_codes(tmp_path: Path) -> None:
    assert replay_cli(str(tmp_path / "nothing"), "--target", "builtin:demo")[0] == 2
    assert replay_cli(str(tmp_path), "--target", "builtin:demo")[0] == 2  # not a recording
    assert replay_cli(str(SAMPLE), "--target", str(tmp_path / "nope"))[0] == 2
    assert replay_cli(str(SAMPLE), "--target", "builtin:demo", "--fail-on", "bogus=1")[0] == 2
    assert replay_cli(str(SAMPLE), "--target", "builtin:demo", "--format", "csv")[0] == 2
    code, payload, _ = replay_cli(str(SAMPLE), "--target", "builtin:nope")
    assert code == 3 and "could not be loaded" in payload["errors"][0]

    def wrist_camera(manifest: dict[str, Any]) -> None:
        manifest["inputs"][1]["camera"] = "wrist"

    code, payload, _ = replay_cli(str(SAMPLE), "--target", str(variant_export(tmp_path, "wrist", wrist_camera)))
    assert code == 3 and "needs camera(s) ['wrist']" in payload["errors"][0]
    unreachable = tmp_path / "http.yaml"
    unreachable.write_text("kind: http\nurl: http://127.0.0.1:9\nconnect_timeout_s: 0.3\n")
    code, payload, _ = replay_cli(str(SAMPLE), "--target", str(unreachable))
    assert code == 3, payload


def test_plots_and_html_report_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    export = variant_export(tmp_path, "changed", _changed_normalisation)
    plots = tmp_path / "plots"
    code, payload, out = replay_cli(str(SAMPLE), "--target", str(export), "--plots", str(plots))
    assert code == 0, out
    pngs = [Path(p) for p in payload["plots"]["png"]]
    assert len(pngs) == 2 and all(p.parent == plots for p in pngs)
    for png in pngs:
        with Image.open(png) as img:
            assert img.format == "PNG" and img.width >= 400 and img.height >= 200
            pixels = np.asarray(img.convert("RGB"))
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # curves, text, axes: not blank
        assert pixels.std() > 10
    html = (plots / "report.html").read_text()
    assert all(p.name in html for p in pngs)
    assert "right_joint3" in html and "mismatch" in html

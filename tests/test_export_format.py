"""reflex_config.json format v2: validation, and the session refusing a policy that does not fit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import base_session, write_session
from pydantic import ValidationError

from reflex.policy.onnx_policy import OnnxPolicy
from reflex.ports import JointLayout, TargetInfo
from reflex.runtime.session import run_session_file
from reflex.runtime.target_fit import RobotSide, target_mismatches
from reflex.targets.export_manifest import INPUT_ROLES, ExportManifest, Stats, resolve_export_dir

DEMO = resolve_export_dir("builtin:demo", Path.cwd())


def demo_manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEMO / "reflex_config.json").read_text())
    return data


def copy_demo(tmp_path: Path, **changes: Any) -> Path:
    out = tmp_path / "export"
    shutil.copytree(DEMO, out)
    data = demo_manifest()
    data.update(changes)
    (out / "reflex_config.json").write_text(json.dumps(data))
    return out


def test_shipped_demo_is_format_2_with_semantics_and_v1_still_loads() -> None:
    m = ExportManifest.model_validate(demo_manifest())
    assert m.format_version == 2 and m.action_semantics.units is not None
    assert m.action_semantics.gripper_ranges == {"left_gripper": [0.0, 1.0], "right_gripper": [0.0, 1.0]}
    v1 = demo_manifest()
    for key in ("action_semantics", "provenance", "parity", "tokenizer"):
        v1.pop(key, None)
    v1["format_version"] = 1
    assert ExportManifest.model_validate(v1).action_semantics.kind == "absolute"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"inputs": [{"name": "state", "role": "state"}, {"name": "x", "role": "velocity"}]}, "role"),
        ({"inputs": [{"name": "state", "role": "state"}, {"name": "t", "role": "text", "dtype": "int64"}]},
         "tokenizer"),
        ({"model_file": "../elsewhere/model.onnx"}, "relative path inside the export"),
        ({"action_semantics": {"gripper_ranges": {"left_hand": [0, 1]}}}, "unknown action"),
        ({"action_semantics": {"units": ["rad"]}}, "action_dim entries"),
        ({"normalization": {"images": {"wrist": {"mean": [0, 0, 0], "std": [1, 1, 1]}}}}, "no image input"),
        ({"state_names": ["a"]}, "state_dim entries"),
    ],
)
def test_invalid_manifests_are_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExportManifest.model_validate({**demo_manifest(), **change})


def test_roles_are_listed_once_for_docs_and_runtime() -> None:
    assert {"state", "image", "noise", "text", "text_mask"} <= set(INPUT_ROLES)
    doc = (Path(__file__).parent.parent / "docs" / "export-format.md").read_text()
    for role in INPUT_ROLES:
        assert f"`{role}`" in doc


def test_min_max_stats_follow_lerobot_formulas() -> None:
    stats = Stats(mode="min_max", min=[-1.0, 0.0], max=[3.0, 0.0], eps=1e-8)
    offset, scale_in, scale_out = stats.affine()
    x = np.array([1.0, 0.0])
    normalised = (x - offset) / scale_in
    assert np.allclose(normalised, [0.0, -1.0])  # 2 (x - min) / (max - min) - 1; zero range -> -1
    assert np.allclose(normalised * scale_out + offset, x)


def _layout(units: tuple[str, ...] | None = None) -> JointLayout:
    return JointLayout(("j1", "grip"), np.array([-1.0, 0.0]), np.array([1.0, 1.0]), units)


def _info(**semantics: Any) -> TargetInfo:
    return TargetInfo("local", 2, 2, 10, 0.1, action_names=("j1", "grip"), action_semantics=semantics)


def fit_problems(layout: JointLayout, info: TargetInfo) -> list[str]:
    return target_mismatches(info, RobotSide(layout.names, None, layout=layout))


def test_fit_problems_name_the_mismatch() -> None:
    assert fit_problems(_layout(("rad", "normalized")), _info(kind="absolute", units=["rad", "normalized"])) == []
    assert "delta" in fit_problems(_layout(), _info(kind="delta"))[0]
    (units,) = fit_problems(_layout(("rad", "normalized")), _info(units=["deg", "normalized"]))
    assert "j1 (deg vs rad)" in units
    (grip,) = fit_problems(_layout(), _info(gripper_ranges={"grip": [0.0, 0.08]}))
    assert "grip" in grip and "[0, 0.08]" in grip
    assert fit_problems(_layout(), _info(units=["deg", "m"])) == []  # hardware declares no units


@pytest.mark.parametrize(
    ("semantics", "message"),
    [
        ({"kind": "delta"}, "actions are 'delta'"),
        ({"units": ["deg"] + ["rad"] * 5 + ["normalized"] * 1 + ["rad"] * 6 + ["normalized"]},
         "left_joint1 (deg vs rad)"),
        ({"gripper_ranges": {"right_gripper": [0.0, 0.09]}}, "right_gripper"),
    ],
)
def test_session_refuses_a_mismatched_policy_before_enabling(
    tmp_path: Path, semantics: dict[str, Any], message: str
) -> None:
    export = copy_demo(tmp_path, action_semantics=semantics)
    session = base_session(mode="apply_actions", target={"kind": "local", "export": str(export)})
    result = run_session_file(write_session(tmp_path, session))
    assert not result.ok and result.exit_code == 3
    assert result.setup_failed and message in result.errors[0]
    assert result.applied_steps == 0


def test_check_reports_the_same_mismatch(tmp_path: Path) -> None:
    from reflex.runtime.check import check_session_file

    export = copy_demo(tmp_path, action_semantics={"kind": "delta"})
    report = check_session_file(write_session(tmp_path, base_session(target={"kind": "local", "export": str(export)})))
    assert not report["ok"] and any("delta" in e for e in report["errors"])


def test_policy_refuses_unknown_noise_shape_and_reads_declared_one(tmp_path: Path) -> None:
    data = demo_manifest()
    export = copy_demo(tmp_path)
    policy = OnnxPolicy(export)
    assert policy.noise([3]).shape == (1, data["chunk_length"], data["action_dim"])
    state = np.array(data["normalization"]["state"]["mean"])
    image = np.zeros((96, 128, 3), np.uint8)
    given = {"noise": np.zeros((1, 50, 14), np.float32)}
    a = policy.predict_batch(state[None], {"top": image[None]}, [0], noise=given)
    b = policy.predict_batch(state[None], {"top": image[None]}, [99], noise=given)
    assert np.array_equal(a, b)  # explicit noise replaces the (seed, step) noise


def test_demo_policy_closed_loop_stays_inside_limits_and_within_max_delta() -> None:
    """The bundled demo driving a perfectly tracking arm in simulated time, for 20 chunks from the
    home pose, at the brightest image (fastest): every action is inside the joint limits and
    within a quarter of the demo session's max_delta of the previous one (0.005 rad of motion
    per step plus the seeded jitter)."""
    from reflex.hardware.yam_layout import yam_bimanual_layout, yam_home_pose

    layout = yam_bimanual_layout()
    policy = OnnxPolicy(DEMO)
    state, previous = yam_home_pose(), yam_home_pose()
    bright = np.full((96, 128, 3), 255, np.uint8)
    moved = np.zeros(14)
    for chunk_no in range(20):
        chunk = policy.predict(state, {"top": bright}, chunk_no * 25)
        for action in chunk[:25]:  # replan every 25 actions (0.5 s), as a prefetching session does
            assert np.all(action >= layout.lower) and np.all(action <= layout.upper)
            assert np.max(np.abs(action - previous)) <= 0.05 / 4
            moved = np.maximum(moved, np.abs(action - yam_home_pose()))
            previous = state = action
    assert np.all(moved[[0, 1, 2, 3, 7, 8, 9, 10]] > 0.3)  # it visibly moves the arms


def test_make_demo_session_never_clamps() -> None:
    """configs/sim_demo.yaml (what `make demo` runs): the guard changes nothing. The demo asks for
    at most 0.005 rad per 50 Hz step; the simulated arm lags its command by ~0.0125 rad; so only
    a tick later than 100 ms (the loop skipping ahead in the chunk) could reach max_delta 0.05."""
    from conftest import REPO

    result = run_session_file(REPO / "configs" / "sim_demo.yaml", no_record=True)
    out = result.to_json()
    assert out["ok"] and out["appliedSteps"] == 250
    assert out["guard"]["clampLimitSteps"] == 0
    if out["loop"]["latenessMs"]["max"] < 100:
        assert out["guard"]["clampDeltaSteps"] == 0, out["loop"]

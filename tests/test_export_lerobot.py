"""``reflex export`` / ``reflex validate`` on small LeRobot ACT and Diffusion checkpoints that the
tests build with LeRobot's own classes and ``save_pretrained`` (random weights, no hub), then run
on the simulated robot and replay exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import json_result, run_cli, write_session
from lerobot_testutil import IMAGE_SHAPE, build_checkpoint

pytest.importorskip("lerobot")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.slow

_, HEIGHT, WIDTH = IMAGE_SHAPE


def robot_session(tmp: Path, export: Path | None = None, steps: int = 60) -> Path:
    """The simulated YAM robot with a camera the size the policy takes."""
    session: dict[str, Any] = {
        "mode": "dry_run",
        "control_rate_hz": 50,
        "max_steps": steps,
        "task": "pick up the cube",
        "target": {"kind": "local", "export": str(export) if export else "builtin:demo"},
        "hardware": {"kind": "sim"},
        "cameras": {"top": {"kind": "sim", "width": WIDTH, "height": HEIGHT, "fps": 50}},
        "record": {"formats": ["jsonl"], "image_encoding": "lossless"},  # replay sees the policy's pixels
    }
    return write_session(tmp, session, name=f"session_{export.name if export else 'like'}.yaml")


@pytest.fixture(scope="module", params=["act", "diffusion"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    kind = request.param
    tmp = tmp_path_factory.mktemp(kind)
    ckpt = build_checkpoint(kind, tmp / "checkpoint")
    out = tmp / "export"
    like = robot_session(tmp)
    proc = run_cli(["export", str(ckpt), "--out", str(out), "--like", str(like), "--action-dt", "0.02", "--json"],
                   timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"kind": kind, "tmp": tmp, "checkpoint": ckpt, "export": out, "result": json_result(proc)}


def test_export_passes_parity_and_stores_fixtures_and_figures(exported: dict[str, Any]) -> None:
    result, out = exported["result"], exported["export"]
    assert result["ok"] and result["policyType"] == exported["kind"]
    assert 0 <= result["maxAbs"] <= 1e-4 and len(result["fixtures"]) == 5
    manifest = json.loads((out / "reflex_config.json").read_text())
    parity = manifest["parity"]
    assert parity["max_abs"] == result["maxAbs"] and parity["threshold"] == 1e-4
    assert {"max_abs", "mean_abs", "cosine"} <= set(parity["results"][0])
    assert all(r["cosine"] > 0.999999 for r in parity["results"])
    with np.load(out / parity["fixtures_file"]) as fx:
        assert fx["reference"].shape == (5, manifest["chunk_length"], 14)
        assert fx["image.top"].shape == (5, HEIGHT, WIDTH, 3) and fx["image.top"].dtype == np.uint8
        assert np.ptp(fx["reference"], axis=0).max() > 1e-3  # different inputs, different chunks
    prov = manifest["provenance"]
    assert prov["source_kind"] == "lerobot" and len(prov["checkpoint_sha256"]) == 64 and prov["opset"] == 18
    assert manifest["action_names"][0] == "left_joint1" and manifest["action_semantics"]["units"][6] == "normalized"
    noise_inputs = [i for i in manifest["inputs"] if i["role"] == "noise"]
    if exported["kind"] == "diffusion":  # DDPM: initial noise and per-step noise are inputs
        assert [i["name"] for i in noise_inputs] == ["noise", "step_noise"]
        assert manifest["normalization"]["state"]["mode"] == "min_max"
        assert manifest["inputs"][0]["history"] == 2
    else:
        assert noise_inputs == [] and manifest["normalization"]["state"]["mode"] == "mean_std"
    assert set(manifest["normalization"]["images"]) == {"top"}


def test_validate_passes_then_a_tampered_model_fails(exported: dict[str, Any], tmp_path: Path) -> None:
    proc = run_cli(["validate", str(exported["export"]), "--json"])
    assert proc.returncode == 0, proc.stderr
    report = json_result(proc)
    assert report["ok"] and len(report["fixtures"]) == 5 and report["providers"] == ["CPUExecutionProvider"]
    assert all(f["max_abs"] <= 1e-4 and f["cosine"] > 0.999999 for f in report["fixtures"])

    import onnx
    from onnx import numpy_helper

    tampered = tmp_path / "tampered"
    shutil.copytree(exported["export"], tampered)
    model = onnx.load(str(tampered / "model.onnx"))
    for weights in model.graph.initializer:  # every weight matrix / kernel 2% larger
        if weights.data_type == onnx.TensorProto.FLOAT and len(weights.dims) >= 2:
            weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * np.float32(1.02), weights.name))
    onnx.save(model, str(tampered / "model.onnx"))
    proc = run_cli(["validate", str(tampered), "--json"])
    assert proc.returncode == 1, proc.stderr
    bad = json_result(proc)
    assert not bad["ok"] and bad["maxAbs"] > 1e-4


def test_connect_runs_the_export_on_the_sim_robot_and_replay_reproduces(exported: dict[str, Any]) -> None:
    tmp = exported["tmp"]
    session = robot_session(tmp, exported["export"])
    rec = tmp / "recording"
    proc = run_cli(["connect", "--config", str(session), "--record", str(rec), "--json"], timeout=300)
    result = json_result(proc)
    assert proc.returncode == 0 and result["ok"], result.get("errors")
    assert result["steps"] == 60 and result["target"]["modelHash"]
    proc = run_cli(["replay", str(rec), "--target", str(exported["export"]), "--fail-on", "reproduce", "--json"],
                   timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reproduce" in proc.stdout


def test_checkpoint_without_normalisation_files_is_refused(exported: dict[str, Any], tmp_path: Path) -> None:
    broken = tmp_path / "no_stats"
    shutil.copytree(exported["checkpoint"], broken)
    for stats in broken.glob("policy_preprocessor_step_*_normalizer_processor.safetensors"):
        stats.unlink()
    out = tmp_path / "out"
    proc = run_cli(["export", str(broken), "--out", str(out)])
    assert proc.returncode == 2
    assert "normalisation statistics" in proc.stderr and "normalizer_processor.safetensors" in proc.stderr
    assert not out.exists()
    no_post = tmp_path / "no_post"
    shutil.copytree(exported["checkpoint"], no_post)
    (no_post / "policy_postprocessor.json").unlink()
    proc = run_cli(["export", str(no_post), "--out", str(out)])
    assert proc.returncode == 2 and "policy_postprocessor.json not found" in proc.stderr


def test_parity_gate_refuses_to_write_over_the_threshold(exported: dict[str, Any], tmp_path: Path) -> None:
    if exported["kind"] != "act":
        pytest.skip("one policy is enough to show the refusal")
    out = tmp_path / "strict"
    proc = run_cli(["export", str(exported["checkpoint"]), "--out", str(out), "--threshold", "1e-12", "--json"],
                   timeout=900)
    assert proc.returncode == 1
    assert "parity gate failed" in json_result(proc)["error"] and not out.exists()

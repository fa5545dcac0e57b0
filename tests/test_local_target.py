"""The local ONNX target: provider selection, strict mode, export checks, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import base_session, json_result, run_cli, write_session

from reflex.policy.onnx_policy import OnnxPolicy, PolicyInputError
from reflex.policy.providers import ProviderError, choose_providers
from reflex.runtime.session import run_session_file
from reflex.targets.export_manifest import resolve_export_dir

DEMO = resolve_export_dir("builtin:demo", Path.cwd())


def test_provider_preference_and_overrides() -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(available, None, strict=False) == available
    assert choose_providers(["CPUExecutionProvider"], ["tensorrt", "cpu"], strict=False) == ["CPUExecutionProvider"]
    with pytest.raises(ProviderError, match="TensorrtExecutionProvider"):
        choose_providers(["CPUExecutionProvider"], ["tensorrt", "cpu"], strict=True)
    with pytest.raises(ProviderError):
        choose_providers(["CPUExecutionProvider"], ["cuda"], strict=False)


def test_strict_provider_missing_is_a_setup_error(tmp_path: Path) -> None:
    target = {"kind": "local", "export": "builtin:demo", "providers": ["cuda", "cpu"], "strict_providers": True}
    result = run_session_file(write_session(tmp_path, base_session(target=target)))
    assert result.exit_code == 3 and "CUDAExecutionProvider" in result.errors[0]
    relaxed = {**target, "strict_providers": False}
    result = run_session_file(write_session(tmp_path, base_session(target=relaxed)))
    assert result.ok and result.target["providers"] == ["CPUExecutionProvider"]


def test_same_observation_and_step_give_the_same_chunk_and_the_seed_matters() -> None:
    policy = OnnxPolicy(DEMO)
    state = np.linspace(0.1, 0.9, 14)
    image = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    a = policy.predict(state, {"top": image}, step=7)
    b = policy.predict(state, {"top": image}, step=7)
    c = policy.predict(state, {"top": image}, step=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    other_seed = OnnxPolicy(DEMO, seed=123).predict(state, {"top": image}, step=7)
    assert 0 < np.abs(other_seed - a).max() < 0.05  # noise is tiny but present
    brighter = policy.predict(state, {"top": np.full_like(image, 255)}, step=7)
    assert not np.allclose(brighter, a)  # the image input is really used
    batch = policy.predict_batch(np.stack([state, state]), {"top": np.stack([image, image])}, [7, 8])
    assert np.allclose(batch[0], a, atol=1e-6) and np.allclose(batch[1], c, atol=1e-6)


def test_bad_inputs_are_named() -> None:
    policy = OnnxPolicy(DEMO)
    with pytest.raises(PolicyInputError, match="camera 'top'"):
        policy.predict(np.zeros(14), {}, 0)
    with pytest.raises(PolicyInputError, match=r"\(96, 128, 3\)"):
        policy.predict(np.zeros(14), {"top": np.zeros((10, 10, 3), np.uint8)}, 0)
    with pytest.raises(PolicyInputError, match="state"):
        policy.predict(np.zeros(13), {"top": np.zeros((96, 128, 3), np.uint8)}, 0)


def test_manifest_that_does_not_match_the_model_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(DEMO, export)
    manifest = json.loads((export / "reflex_config.json").read_text())
    manifest["inputs"][0]["name"] = "observation.state"
    (export / "reflex_config.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="declares inputs"):
        OnnxPolicy(export)
    result = run_session_file(write_session(tmp_path, base_session(target={"kind": "local", "export": "export"})))
    assert result.exit_code == 3 and "declares inputs" in result.errors[0]


def test_default_recording_dir_and_no_record_env(tmp_path: Path) -> None:
    root = tmp_path / "root"
    path = write_session(tmp_path, base_session(record={"formats": ["jsonl"]}, max_steps=5))
    proc = run_cli(["connect", "--config", str(path), "--json", "--api-key", "rfx_secret"],
                   REFLEX_RECORDINGS_DIR=str(root))
    result = json_result(proc)
    assert proc.returncode == 0 and result["ok"]
    recording = Path(result["recording"]["path"])
    assert recording.parent.parent == root.resolve()
    assert recording.parent.name != "anonymous" and "rfx_secret" not in str(recording)
    assert recording.name.startswith("session_") and (recording / "jsonl" / "steps.jsonl").is_file()
    proc = run_cli(["connect", "--config", str(path), "--json"], REFLEX_RECORDINGS_DIR=str(root / "x"),
                   REFLEX_NO_RECORD="1")
    assert json_result(proc)["recording"] is None and not (root / "x").exists()

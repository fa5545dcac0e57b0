"""Language input end to end: a tokenizer inside the export, the session's task tokenised per
chunk request, ``reflex serve`` taking the instruction as ``task`` and openpi's ``prompt``, and
recordings of different instructions replaying exactly."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import base_session, json_result, run_cli, write_session
from text_testutil import MAX_LEN, build_text_export

from reflex.policy.onnx_policy import OnnxPolicy, PolicyInputError

pytest.importorskip("tokenizers")
# openpi-client 0.1.2 calls websockets.connect() the pre-17.1 way; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_text_export(tmp_path_factory.mktemp("text") / "export")


def test_tokenizer_gives_ids_and_mask_and_the_instruction_changes_the_chunk(export: Path) -> None:
    policy = OnnxPolicy(export)
    ids, mask = policy.tokenize(["Pick up the red cube", "wave"])
    assert ids.shape == mask.shape == (2, MAX_LEN) and ids.dtype == np.int64
    assert mask[0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0] and mask[1].tolist() == [1] + [0] * 7
    assert ids[1, 0] != ids[0, 0] and ids[0, 5:].tolist() == [0, 0, 0]  # distinct words; padded with pad_id
    state = np.linspace(0.1, 0.9, 14)
    a = policy.predict(state, {}, 0, "pick up the red cube")
    b = policy.predict(state, {}, 0, "open the drawer")
    assert not np.allclose(a, b) and np.array_equal(a, policy.predict(state, {}, 5, "pick up the red cube"))
    with pytest.raises(PolicyInputError, match="task"):
        policy.predict(state, {}, 0, "x" * 5000)


def session(tmp: Path, export: Path, task: str, name: str) -> Path:
    data: dict[str, Any] = base_session(
        target={"kind": "local", "export": str(export)}, task=task, max_steps=30, cameras={},
        record={"formats": ["jsonl"]},
    )
    return write_session(tmp, data, name=f"{name}.yaml")


def recorded_chunks(rec: Path) -> list[list[list[float]]]:
    lines = [json.loads(line) for line in (rec / "jsonl" / "steps.jsonl").read_text().splitlines()]
    return [line["actions"] for line in lines if line.get("type") == "chunk"]


def test_sessions_with_different_instructions_record_different_chunks_and_replay_exactly(
    export: Path, tmp_path: Path
) -> None:
    chunks = {}
    for name, task in (("cube", "pick up the red cube"), ("drawer", "open the drawer")):
        rec = tmp_path / f"rec_{name}"
        proc = run_cli(["connect", "--config", str(session(tmp_path, export, task, name)), "--record", str(rec),
                        "--json"])
        assert proc.returncode == 0 and json_result(proc)["ok"], proc.stderr[-2000:]
        chunks[name] = recorded_chunks(rec)
        replayed = run_cli(["replay", str(rec), "--target", str(export), "--fail-on", "reproduce"])
        assert replayed.returncode == 0, replayed.stdout[-2000:] + replayed.stderr[-2000:]
    assert not np.allclose(np.asarray(chunks["cube"][0]), np.asarray(chunks["drawer"][0]))


def test_serve_takes_the_instruction_as_task_and_as_openpi_prompt(export: Path) -> None:
    pytest.importorskip("aiohttp")
    from openpi_client.websocket_client_policy import WebsocketClientPolicy
    from serve_testutil import ServeProcess

    local = OnnxPolicy(export)
    state = np.linspace(0.1, 0.9, 14)
    served = ServeProcess(str(export))
    try:
        def act(**fields: Any) -> np.ndarray:
            body = json.dumps({"state": state.tolist(), "step": 3, **fields}).encode()
            req = urllib.request.Request(f"{served.url}/act", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=20) as resp:
                return np.asarray(json.loads(resp.read())["actions"])

        cube, drawer = act(task="pick up the red cube"), act(prompt="open the drawer")
        np.testing.assert_allclose(cube, local.predict(state, {}, 3, "pick up the red cube"), atol=1e-9, rtol=0)
        np.testing.assert_allclose(drawer, local.predict(state, {}, 3, "open the drawer"), atol=1e-9, rtol=0)
        assert not np.allclose(cube, drawer)
        client = WebsocketClientPolicy("127.0.0.1", served.port)
        result = client.infer({"state": state.astype(np.float32), "prompt": "wave both arms", "step": 3})
        np.testing.assert_allclose(result["actions"], local.predict(state, {}, 3, "wave both arms"), atol=1e-6)
    finally:
        served.stop()

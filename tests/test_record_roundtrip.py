"""Every format read back with its own ecosystem's reader and compared, step by step and frame by
frame, with what really happened (the robot's and the cameras' journals)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("av")
pytest.importorskip("mcap_protobuf")
pytest.importorskip("rerun")

from test_record_support import (
    CAMERAS,
    Truth,
    assert_frame_matches,
    decode_jpeg,
    jsonl_records,
    lerobot_load,
    mcap_messages,
    record_session,
    require_readers,
    rerun_cli,
    rerun_table,
)

from reflex.recording.clock import WallClock
from reflex.runtime.session import run_session_file

FORMATS = ["jsonl", "lerobot", "mcap", "rerun"]
STEPS = 90
TASK = "stack the red cube"


def _run(tmp: Path, mode: str) -> dict[str, Any]:
    config, rec_dir, hw, cams = record_session(tmp, FORMATS, mode=mode, max_steps=STEPS)
    result = run_session_file(config)
    assert result.ok, result.errors
    assert result.steps == STEPS
    return {"result": result, "dir": rec_dir, "truth": Truth(hw, cams), "jsonl": jsonl_records(rec_dir)}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(tmp_path_factory.mktemp("applied"), "apply_actions")


@pytest.fixture(scope="module")
def dry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(tmp_path_factory.mktemp("dry"), "dry_run")


def _wall(run: dict[str, Any]) -> WallClock:
    header = run["jsonl"]["header"][0]

    class _M:
        t_start_wall = header["t_start_wall"]
        t_start_mono = header["t_start_mono"]

    return WallClock(_M())  # type: ignore[arg-type]


# -- the session result and the manifest ---------------------------------------------------------
def test_result_and_manifest_report_every_format_complete(applied: dict[str, Any]) -> None:
    rec = applied["result"].recording
    assert rec["formats"] == FORMATS
    assert rec["dropped"] == {f: 0 for f in FORMATS}
    assert rec["writtenSteps"] == {f: STEPS for f in FORMATS}
    assert rec["failures"] == [] and rec["unfinished"] == [] and rec["degraded"] is False
    assert rec["formatStatus"]["lerobot"]["status"] == "complete"
    assert rec["formatStatus"]["lerobot"]["rows"] == STEPS
    manifest = json.loads((applied["dir"] / "recording.json").read_text())
    assert manifest["status"] == "complete" and manifest["steps"] == STEPS
    header = applied["jsonl"]["header"][0]
    for key in ("config_hash", "model_hash", "seed", "software_version"):
        assert manifest[key] == (header[key] if key in header else header["target"][key])
    assert manifest["model_hash"] and manifest["seed"] is not None


# -- JSONL: plain JSON -------------------------------------------------------------------------
def test_jsonl_matches_robot_cameras_and_actions(applied: dict[str, Any]) -> None:
    from PIL import Image

    truth: Truth = applied["truth"]
    lines = applied["jsonl"]
    steps = lines["step"]
    assert [s["step"] for s in steps] == list(range(STEPS))
    # a step is applied, or held (stale data or no chunk yet, as a loaded machine can make it):
    # then it has no action and nothing was sent
    held = [s["step"] for s in steps if not s["applied"]]
    assert applied["result"].loop["heldSteps"] == len(held)
    seen: dict[str, int] = {}
    for s in steps:
        where = f"jsonl step {s['step']}"
        np.testing.assert_array_equal(s["state"], truth.state_at(s["t_state"], where))
        assert s["task"] == TASK
        if s["applied"]:
            np.testing.assert_array_equal(s["action"], truth.applied[s["step"]])
        else:
            assert s["action"] is None and s["step"] not in truth.applied, where
        for cam, frame in s["frames"].items():
            assert truth.frames[(cam, frame["seq"])] == frame["t_capture"], where
            assert frame["path"].endswith(".jpg"), where  # record.image_encoding: lossy, the default
            image = np.asarray(Image.open(applied["dir"] / "jsonl" / frame["path"]))
            assert_frame_matches(image, CAMERAS[cam], frame["seq"], lossy=True, where=where)
            assert frame["seq"] > seen.get(cam, 0)
            seen[cam] = frame["seq"]
    assert set(seen) == set(CAMERAS)
    assert len(truth.applied) == STEPS - len(held)
    assert lines["chunk"] and all(len(c["actions"][0]) == 14 for c in lines["chunk"])
    assert {e["kind"] for e in lines["event"]} >= {"enabled", "session_end"}
    assert lines["end"][0]["counts"]["step"] == STEPS


# -- LeRobot: the LeRobot dataset loader -------------------------------------------------------
def test_lerobot_loader_returns_every_frame_and_value(applied: dict[str, Any], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    require_readers()
    truth: Truth = applied["truth"]
    root = applied["dir"] / "lerobot"
    loaded = lerobot_load(root, tmp_path, delta_action=3)
    arrays = loaded["arrays"]
    assert loaded["len"] == STEPS and loaded["num_episodes"] == 1 and loaded["fps"] == 30
    assert loaded["tasks"] == [TASK] * STEPS
    assert sorted(loaded["camera_keys"]) == sorted(f"observation.images.{c}" for c in CAMERAS)
    # exact values straight from the parquet file (the loader turns float64 scalars into float32)
    table = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pydict()
    jsonl_steps = applied["jsonl"]["step"]
    cams = sorted(CAMERAS, key=list(CAMERAS).index)
    for i in range(STEPS):
        where = f"lerobot item {i}"
        s = jsonl_steps[i]
        assert arrays["frame_index"][i] == i and arrays["index"][i] == i and arrays["reflex.step"][i] == i
        assert arrays["timestamp"][i] == np.float32(i / 30)
        assert table["reflex.t_state"][i] == s["t_state"]
        state = truth.state_at(table["reflex.t_state"][i], where)
        np.testing.assert_array_equal(arrays["observation.state"][i], state.astype(np.float32))
        # the action window: row i+k's action, padded past the end of the episode
        for k in range(3):
            if i + k < STEPS:
                sent = truth.applied.get(i + k)
                if sent is None:  # a held step: NaN, no action was computed
                    assert np.all(np.isnan(arrays["action"][i, k])), where
                else:
                    np.testing.assert_array_equal(arrays["action"][i, k], sent.astype(np.float32))
            assert bool(arrays["action_is_pad"][i, k]) == (i + k >= STEPS)
        assert bool(arrays["reflex.applied"][i]) is (i in truth.applied)
        assert table["reflex.chunk_id"][i] == s["chunk_id"]
        for c, cam in enumerate(cams):
            seq = table["reflex.frame_seq"][i][c]
            assert table["reflex.t_capture"][i][c] == truth.frames[(cam, seq)]
            assert table["reflex.frame_new"][i][c] == (cam in s["frames"])
            if cam in s["frames"]:
                assert s["frames"][cam]["seq"] == seq
            assert_frame_matches(arrays[f"observation.images.{cam}"][i], CAMERAS[cam], seq, lossy=True,
                                 where=f"{where} camera {cam}")
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == STEPS
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [STEPS]
    assert len(stats["observation.images.top"]["mean"]) == 3
    assert not (root / ".partial").exists()


# -- MCAP: mcap reader with protobuf decoding ----------------------------------------------------
def test_mcap_decodes_to_what_happened(applied: dict[str, Any]) -> None:
    from mcap.reader import make_reader

    truth: Truth = applied["truth"]
    wall = _wall(applied)
    path = applied["dir"] / "mcap" / "session.mcap"
    topics, _ = mcap_messages(path)
    steps = [d for _, d in topics["/reflex/step"]]
    assert [s["step"] for s in steps] == list(range(STEPS))
    states = topics["/robot/joint_states"]
    actions = {record.sequence: msg for record, msg in topics["/action/applied"]}  # by step
    assert len(states) == STEPS and sorted(actions) == sorted(truth.applied) and "/action/not_applied" not in topics
    for i, s in enumerate(steps):
        where = f"mcap step {i}"
        record, msg = states[i]
        assert record.sequence == i and record.log_time == wall.ns(s["t_state"])
        assert msg.timestamp.ToNanoseconds() == wall.ns(s["t_state"])
        assert [j.name for j in msg.joints] == [f"{side}_{n}" for side in ("left", "right")
                                                for n in (*(f"joint{k}" for k in range(1, 7)), "gripper")]
        np.testing.assert_array_equal([j.position for j in msg.joints], truth.state_at(s["t_state"], where))
        assert s["applied"] is (i in truth.applied)  # else held: no action, nothing sent
        if i in truth.applied:
            np.testing.assert_array_equal([j.position for j in actions[i].joints], truth.applied[i])
    frames = 0
    for cam, code in CAMERAS.items():
        for record, msg in topics[f"/camera/{cam}/image"]:
            assert msg.format == "jpeg" and msg.frame_id == cam
            assert record.log_time == wall.ns(truth.frames[(cam, record.sequence)])
            assert_frame_matches(decode_jpeg(msg.data), code, record.sequence, lossy=True,
                                 where=f"mcap {cam} frame {record.sequence}")
            frames += 1
    assert frames == sum(len(s["frames"]) for s in applied["jsonl"]["step"])
    chunks = [d for _, d in topics["/policy/chunk"]]
    assert [c["chunk_id"] for c in chunks] == [c["chunk_id"] for c in applied["jsonl"]["chunk"]]
    for got, want in zip(chunks, applied["jsonl"]["chunk"], strict=True):
        np.testing.assert_array_equal(got["actions"], want["actions"])
    kinds = [d["kind"] for _, d in topics["/reflex/event"]]
    assert "session_end" in kinds and len(topics["/reflex/log"]) == len(kinds)
    with path.open("rb") as fh:
        reader = make_reader(fh)
        meta = {m.name: m.metadata for m in reader.iter_metadata()}["reflex.session"]
        attachments = {a.name: a for a in reader.iter_attachments()}
        summary = reader.get_summary()
    header = applied["jsonl"]["header"][0]
    assert meta["config_hash"] == header["config_hash"]
    assert meta["model_hash"] == header["target"]["model_hash"] and meta["seed"] == str(header["target"]["seed"])
    assert meta["software_version"] == header["software_version"] and meta["task"] == TASK
    assert json.loads(attachments["config.resolved.json"].data) == header["config_resolved"]
    assert summary is not None and {c.compression for c in summary.chunk_indexes} == {"lz4"}


# -- Rerun: rerun's own reader and `rerun rrd verify` ----------------------------------------------
def test_rerun_reads_back_and_verifies(applied: dict[str, Any]) -> None:
    truth: Truth = applied["truth"]
    path = applied["dir"] / "rerun" / "session.rrd"
    proc = rerun_cli("rrd", "verify", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = rerun_table(path)
    # the two timelines it writes; not Rerun's log_time (a third column in every chunk's footer entry)
    assert sorted(c for c in table.column_names if "/" not in c) == ["capture_time", "step"]
    rows = table.to_pylist()
    by_step = {r["step"]: r for r in rows if r.get("/reflex/step:t_state")}
    assert sorted(by_step) == list(range(STEPS))
    jsonl_steps = applied["jsonl"]["step"]
    images = 0
    for i in range(STEPS):
        r, s = by_step[i], jsonl_steps[i]
        where = f"rerun step {i}"
        assert r["/reflex/step:t_state"] == [s["t_state"]]
        np.testing.assert_array_equal(r["/robot/state:Scalars:scalars"], truth.state_at(s["t_state"], where))
        assert r["/reflex/step:applied"] == [i in truth.applied]
        assert r.get("/action/not_applied:Scalars:scalars") is None
        if i in truth.applied:
            np.testing.assert_array_equal(r["/action/applied:Scalars:scalars"], truth.applied[i])
        else:  # a held step: no action, nothing sent
            assert r.get("/action/applied:Scalars:scalars") is None, where
        cams = r["/reflex/step:frame_cameras"] or []
        seqs = r["/reflex/step:frame_seq"] or []
        assert dict(zip(cams, seqs, strict=True)) == {c: f["seq"] for c, f in s["frames"].items()}
        for cam, seq in zip(cams, seqs, strict=True):
            blob = r[f"/camera/{cam}:EncodedImage:blob"]
            assert blob, f"{where}: no image for camera {cam}"
            assert_frame_matches(decode_jpeg(bytes(blob[0])), CAMERAS[cam], seq, lossy=True, where=where)
            images += 1
    assert images == sum(len(s["frames"]) for s in jsonl_steps)
    static = rerun_table(path, index=None).to_pylist()[0]
    header = applied["jsonl"]["header"][0]
    assert static["/session:config_hash"] == [header["config_hash"]]
    assert static["/session:model_hash"] == [header["target"]["model_hash"]]
    assert static["/session:seed"] == [header["target"]["seed"]]
    assert static["/task:TextDocument:text"] == [TASK]
    chunk_rows = [r for r in rows if r.get("/policy/chunk_info:chunk_id")]
    want = {c["chunk_id"]: c for c in applied["jsonl"]["chunk"]}
    assert sorted(r["/policy/chunk_info:chunk_id"][0] for r in chunk_rows) == sorted(want)
    for r in chunk_rows:
        chunk = want[r["/policy/chunk_info:chunk_id"][0]]
        np.testing.assert_array_equal(np.reshape(r["/policy/chunk_info:actions"], (-1, 14)), chunk["actions"])


# -- dry_run: nothing is marked applied, in any format -------------------------------------------
def test_dry_run_marks_no_action_as_applied(dry: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    truth: Truth = dry["truth"]
    assert "apply" not in truth.calls and "enable" not in truth.calls
    steps = dry["jsonl"]["step"]
    with_action = [s["step"] for s in steps if s["action"] is not None]
    assert len(with_action) > STEPS // 2
    assert not any(s["applied"] for s in steps)

    table = pq.read_table(dry["dir"] / "lerobot/data/chunk-000/file-000.parquet").to_pydict()
    assert table["reflex.applied"] == [False] * STEPS
    for s, action in zip(steps, table["action"], strict=True):  # the would-be action is kept, just not applied
        if s["action"] is not None:
            np.testing.assert_array_equal(action, np.float32(s["action"]))

    topics, _ = mcap_messages(dry["dir"] / "mcap" / "session.mcap")
    assert "/action/applied" not in topics
    assert [r.sequence for r, _ in topics["/action/not_applied"]] == with_action
    assert not any(d["applied"] for _, d in topics["/reflex/step"])

    rows = rerun_table(dry["dir"] / "rerun" / "session.rrd").to_pylist()
    assert all(r.get("/action/applied:Scalars:scalars") is None for r in rows)
    assert sorted(r["step"] for r in rows if r.get("/action/not_applied:Scalars:scalars")) == with_action
    assert all(r["/reflex/step:applied"] == [False] for r in rows if r.get("/reflex/step:applied"))

"""Replay reads every format Reflex records (JSONL, MCAP, LeRobot v3.0, Rerun) into the same episode."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from replay_testutil import FORMATS, SAMPLE, record, replay_cli

from reflex.replay.observation import chunk_inputs
from reflex.replay.readers import read_recording

pytest.importorskip("mcap")
pytest.importorskip("rerun")
pytest.importorskip("pyarrow")
pytest.importorskip("av")


@pytest.fixture(scope="module")
def state_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One session of the state-only demo policy, recorded in every format at once."""
    return record(tmp_path_factory.mktemp("so"), "rec", list(FORMATS), export="builtin:demo_state_only", steps=200)


@pytest.fixture(scope="module")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image demo policy recorded with the default lossy images (JPEG; H.264 for LeRobot)."""
    return record(tmp_path_factory.mktemp("lossy"), "rec", ["mcap", "lerobot", "rerun"], steps=100, rate=50)


def test_every_format_reads_back_the_same_episode() -> None:
    episodes = {fmt: read_recording(SAMPLE, fmt)[0] for fmt in FORMATS}
    ref = episodes["jsonl"]
    assert len(ref.steps) == 100 and len(ref.chunks) >= 3
    for fmt, ep in episodes.items():
        assert ep.format == fmt and ep.complete
        assert ep.meta.session_id == ref.meta.session_id and ep.meta.seed == 7
        assert ep.meta.model_hash == ref.meta.model_hash and ep.meta.joint_names == ref.meta.joint_names
        assert [s.step for s in ep.steps] == [s.step for s in ref.steps]
        # LeRobot keeps the state as float32, the others as float64
        tol = 1e-6 if fmt == "lerobot" else 0.0
        np.testing.assert_allclose(np.stack([s.state for s in ep.steps]), np.stack([s.state for s in ref.steps]),
                                   atol=tol, rtol=0)
        assert [s.t_state for s in ep.steps] == [s.t_state for s in ref.steps]
        assert [(c.chunk_id, c.obs_step, c.t_origin) for c in ep.chunks] == [
            (c.chunk_id, c.obs_step, c.t_origin) for c in ref.chunks
        ]
        for chunk, ref_chunk in zip(ep.chunks, ref.chunks, strict=True):
            np.testing.assert_array_equal(chunk.actions, ref_chunk.actions)  # whole chunks, exact everywhere
        # the observation behind each chunk: same frame, pixels close to the lossless PNG
        for item, ref_item in zip(chunk_inputs(ep, ["top"]), chunk_inputs(ref, ["top"]), strict=True):
            fa, fb = item.frames["top"], ref_item.frames["top"]
            assert fa.seq == fb.seq and fa.t_capture == fb.t_capture
            pa, pb = fa.load(), fb.load()
            assert pa.shape == pb.shape == (96, 128, 3)
            assert np.abs(pa.astype(int) - pb.astype(int)).mean() < (0.001 if fmt == "jsonl" else 12.0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reproduces_a_policy_within_1e_5(state_only: Path, fmt: str) -> None:
    """The state-only demo policy: nothing lossy reaches it, so every format must reproduce it."""
    code, payload, out = replay_cli(
        str(state_only), "--format", fmt, "--target", "builtin:demo_state_only", "--fail-on", "reproduce,max_abs=1e-5"
    )
    assert code == 0, out
    (episode,) = payload["episodes"]
    assert episode["format"] == fmt and episode["chunks"]["replayed"] == episode["chunks"]["recorded"] >= 2
    assert episode["determinism"]["status"] == "reproduced"
    assert episode["chunkErrors"]["overall"]["maxAbs"] <= 1e-5
    assert episode["executed"]["errors"]["overall"]["maxAbs"] <= 1e-5


@pytest.mark.parametrize("fmt", ["mcap", "lerobot", "rerun"])
def test_lossy_images_are_reported_not_called_a_mismatch(lossy: Path, fmt: str) -> None:
    """The image demo policy from JPEG / H.264 pixels: replay says why it cannot be exact."""
    code, payload, _ = replay_cli(str(lossy), "--format", fmt, "--target", "builtin:demo")
    assert code == 0
    det = payload["episodes"][0]["determinism"]
    assert det["status"] == "cannot_verify" and det["reproduced"] is None
    text = " ".join(det["reasons"])
    assert ("JPEG" in text.upper()) or ("video" in text)
    assert "not as the policy saw them" in text
    # the same pixels loss makes CI fail only when asked to insist on reproduction
    assert replay_cli(str(lossy), "--format", fmt, "-t", "builtin:demo", "--fail-on", "reproduce")[0] == 1


def test_the_default_format_is_the_lossless_one() -> None:
    code, payload, _ = replay_cli(str(SAMPLE), "--target", "builtin:demo")
    assert code == 0 and payload["episodes"][0]["format"] == "jsonl"
    assert payload["episodes"][0]["determinism"]["status"] == "reproduced"


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_truncated_and_corrupt_mcap(tmp_path: Path) -> None:
    copy = tmp_path / "session.mcap"
    shutil.copy(SAMPLE / "mcap" / "session.mcap", copy)
    _truncate(copy, 0.6)
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "truncated" in payload["errors"][0] and "--partial" in payload["errors"][0]
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo", "--partial")
    assert code == 0
    episode = payload["episodes"][0]
    assert 0 < episode["steps"] < 100 and episode["complete"] is False
    copy.write_bytes(b"not an mcap file at all" * 20)
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "not an MCAP file" in payload["errors"][0]


def test_truncated_and_corrupt_rerun(tmp_path: Path) -> None:
    copy = tmp_path / "session.rrd"
    shutil.copy(SAMPLE / "rerun" / "session.rrd", copy)
    _truncate(copy, 0.5)
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "cannot be read" in payload["errors"][0]
    copy.write_bytes(b"garbage" * 100)
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "session.rrd" in payload["errors"][0]


def test_broken_lerobot_datasets(lossy: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lerobot"
    shutil.copytree(lossy / "lerobot", copy)
    video = next((copy / "videos").rglob("*.mp4"))
    video.write_bytes(video.read_bytes()[:200])
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "video" in payload["errors"][0]
    for parquet in (copy / "data").rglob("*.parquet"):
        parquet.write_bytes(b"PAR1 broken")
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "parquet" in payload["errors"][0]
    # a dataset whose runner died before finalizing: replay points at the repair command
    (copy / "meta" / "info.json").unlink()
    (copy / ".partial").mkdir()
    code, payload, _ = replay_cli(str(copy), "--target", "builtin:demo")
    assert code == 2 and "reflex recordings repair" in payload["errors"][0]

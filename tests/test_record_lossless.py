"""``record.image_encoding: lossless``: every format stores exact pixels, so replay reproduces.

One real sim session (demo policy reading camera ``top``) records all four formats losslessly;
each is then replayed with the recorded model and seed and must reproduce the chunks to 1e-5.
The files are also opened with their own readers to check they hold PNG, not JPEG.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import base_session, write_session
from replay_testutil import replay_cli

from reflex.recording.factory import build_recorders

FORMATS = ("jsonl", "mcap", "rerun", "lerobot")


@pytest.fixture(scope="module")
def lossless_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reflex.runtime.session import run_session_file

    tmp = tmp_path_factory.mktemp("lossless")
    session = base_session(
        control_rate_hz=50, max_steps=120, task="wave both arms",  # 120 steps: several chunks
        record={"formats": list(FORMATS), "image_encoding": "lossless"},
    )
    out = tmp / "rec"
    result = run_session_file(write_session(tmp, session), record_dir=str(out))
    assert result.ok, result.errors
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_lossless_recording_reproduces_in_every_format(lossless_recording: Path, fmt: str) -> None:
    code, payload, output = replay_cli(
        str(lossless_recording), "--format", fmt, "--target", "builtin:demo", "--fail-on", "reproduce"
    )
    assert code == 0, output
    episode = payload["episodes"][0]
    assert episode["format"] == fmt
    det = episode["determinism"]
    assert det["status"] == "reproduced", det
    assert det["maxAbs"] is not None and det["maxAbs"] <= 1e-5
    assert episode["chunkErrors"]["overall"]["maxAbs"] <= 1e-5
    assert episode["chunks"]["replayed"] >= 2
    assert not any("not as the policy saw them" in r for r in det["reasons"])


def test_mcap_images_are_png(lossless_recording: Path) -> None:
    from mcap.reader import make_reader
    from PIL import Image

    with (lossless_recording / "mcap" / "session.mcap").open("rb") as fh:
        reader = make_reader(fh)
        messages = list(reader.iter_messages(topics=["/camera/top/image"]))
        assert messages
        from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage

        msg = CompressedImage()
        msg.ParseFromString(messages[0][2].data)
    assert msg.format == "png"
    with Image.open(io.BytesIO(msg.data)) as img:
        assert img.format == "PNG" and img.size == (128, 96)


def test_rerun_images_are_png(lossless_recording: Path) -> None:
    from rerun.chunk import RrdReader

    media: set[str] = set()
    for chunk in RrdReader(lossless_recording / "rerun" / "session.rrd").stream():
        batch = chunk.to_record_batch()
        if str(chunk.entity_path).lstrip("/") == "camera/top" and "EncodedImage:media_type" in batch.schema.names:
            media.update(m for row in batch.column("EncodedImage:media_type").to_pylist() for m in row or [])
    assert media == {"image/png"}


def test_lerobot_images_are_png_in_the_parquet_and_load_exactly(lossless_recording: Path, tmp_path: Path) -> None:
    """LeRobot ``image`` dtype: no videos, a {bytes, path} struct per row, and LeRobot's own loader
    returns the very pixels JSONL recorded (as PNG files)."""
    import pyarrow.parquet as pq
    from PIL import Image
    from test_record_support import lerobot_load, require_readers

    root = lossless_recording / "lerobot"
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.top"]["dtype"] == "image"
    assert info["features"]["observation.images.top"]["shape"] == [96, 128, 3]
    assert info["video_path"] is None and not (root / "videos").exists()
    table = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet")
    cells = table.column("observation.images.top").to_pylist()
    seqs = table.column("reflex.frame_seq").to_pylist()
    assert set(cells[0]) == {"bytes", "path"} and cells[0]["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    jsonl_png = {int(p.stem): p for p in (lossless_recording / "jsonl" / "images" / "top").glob("*.png")}

    def pixels(data: bytes | Path) -> np.ndarray:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            return np.asarray(img.convert("RGB"))

    for k in (0, len(cells) // 2, len(cells) - 1):
        assert np.array_equal(pixels(cells[k]["bytes"]), pixels(jsonl_png[int(seqs[k])]))

    require_readers()
    loaded = lerobot_load(root, tmp_path / "loader")
    assert loaded["len"] == table.num_rows and "observation.images.top" in loaded["camera_keys"]
    images = loaded["arrays"]["observation.images.top"]
    for k in (0, len(cells) - 1):
        assert np.array_equal(images[k], pixels(cells[k]["bytes"]))


def test_lossless_lerobot_repair_and_episodes(tmp_path: Path) -> None:
    """Crash safety holds with PNG rows: after a "kill -9" (recorder never closed) repair keeps
    every flushed row with its exact frame; a second episode gets its own rows, no videos."""
    import pyarrow.parquet as pq
    from test_record_support import assert_frame_matches, make_meta, make_step

    from reflex.recording.lerobot.recorder import LeRobotRecorder
    from reflex.recording.lerobot.repair import repair_lerobot
    from reflex.replay.readers.lerobot import LeRobotReader

    rec = LeRobotRecorder(tmp_path, image_encoding="lossless")
    rec.episode_rows = 8
    rec.open(make_meta(("top", "wrist")))
    for k in range(20):
        rec.write_step(make_step(k, {"top": (1, k), "wrist": (2, k)}))
        if k % 5 == 4:
            rec.flush()
    rec.write_step(make_step(20, {"top": (1, 20), "wrist": (2, 20)}))  # never flushed: lost
    report = repair_lerobot(tmp_path / "lerobot")
    assert report["status"] == "repaired" and report["rows"] == 20 and report["episodes"] == 3
    assert report["frames"] == {"top": 20, "wrist": 20}
    root = tmp_path / "lerobot"
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert data.column("episode_index").to_pylist() == [0] * 8 + [1] * 8 + [2] * 4
    assert not (root / "videos").exists()
    episodes = LeRobotReader().read(root, allow_partial=False)
    assert [len(e.steps) for e in episodes] == [8, 8, 4]
    assert all(not e.lossy_images for e in episodes)
    last = episodes[2].steps[-1]
    for cam, code in (("top", 1), ("wrist", 2)):
        assert_frame_matches(last.frames[cam].load(), code, 19, lossy=False, where=f"step 19 {cam}")


def test_default_encoding_stays_lossy(tmp_path: Path) -> None:
    """Without the option every format is lossy (JPEG, video); with it every one is lossless."""
    from reflex.recording.jsonl import JsonlRecorder
    from reflex.recording.lerobot.recorder import LeRobotRecorder
    from reflex.recording.mcap_recorder import McapRecorder
    from reflex.recording.rerun_recorder import RerunRecorder

    jsonl, mcap, rerun, lerobot = build_recorders(["jsonl", "mcap", "rerun", "lerobot"], tmp_path, images=True)
    assert isinstance(jsonl, JsonlRecorder) and jsonl.image_encoding == "lossy"
    assert isinstance(lerobot, LeRobotRecorder) and not lerobot.lossless
    assert isinstance(mcap, McapRecorder) and mcap.image_encoding == "lossy"
    assert isinstance(rerun, RerunRecorder) and rerun.image_encoding == "lossy"
    jsonl, mcap, lerobot = build_recorders(["jsonl", "mcap", "lerobot"], tmp_path, True, "lossless")
    assert isinstance(jsonl, JsonlRecorder) and jsonl.image_encoding == "lossless"
    assert isinstance(mcap, McapRecorder) and mcap.image_encoding == "lossless"
    assert isinstance(lerobot, LeRobotRecorder) and lerobot.lossless


def test_unknown_encoding_is_a_config_error() -> None:
    from pydantic import ValidationError

    from reflex.config.session import RecordConfig

    assert RecordConfig().image_encoding == "lossy"
    with pytest.raises(ValidationError, match="image_encoding"):
        RecordConfig(image_encoding="png")  # type: ignore[arg-type]

"""The LeRobot writer's parts on real files: journal, finalize/repair, stats, tasks, edge cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
av = pytest.importorskip("av")

import pyarrow.parquet as pq  # noqa: E402
from test_record_support import JOINTS, assert_frame_matches, make_meta, make_step  # noqa: E402

from reflex.recording.lerobot.journal import RowJournal, read_journal  # noqa: E402
from reflex.recording.lerobot.layout import vector_features  # noqa: E402
from reflex.recording.lerobot.recorder import LeRobotRecorder  # noqa: E402
from reflex.recording.lerobot.repair import lerobot_state, repair_lerobot  # noqa: E402
from reflex.recording.lerobot.stats import image_stats, vector_stats  # noqa: E402

CAMS = {"top": 0, "wrist": 1}


def _video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _record(tmp_path: Path, steps: int, close: bool = True, cams: dict[str, int] | None = None,
            episode_rows: int = 0, **step_kwargs: Any) -> LeRobotRecorder:
    cams = CAMS if cams is None else cams
    rec = LeRobotRecorder(tmp_path)
    rec.episode_rows = episode_rows
    rec.open(make_meta(cameras=tuple(cams)))
    for i in range(steps):
        rec.write_step(make_step(i, {name: (code, i + 1) for name, code in cams.items()}, **step_kwargs))
        if i % 10 == 9:
            rec.flush()
    if close:
        rec.close()
    return rec


def test_journal_keeps_every_batch_before_a_torn_one(tmp_path: Path) -> None:
    features = vector_features(list(JOINTS), ["top"])
    journal = RowJournal(tmp_path / "rows.arrows", features)
    for batch in range(3):
        for i in range(5):
            step = make_step(batch * 5 + i)
            journal.append({
                "observation.state": step.state.position, "action": step.action, "reflex.step": step.step,
                "reflex.applied": True, "reflex.t_tick": step.t_tick, "reflex.t_state": step.state.t_capture,
                "reflex.t_capture": np.array([1.0]), "reflex.frame_seq": np.array([i]),
                "reflex.frame_new": np.array([True]), "reflex.chunk_id": 1, "reflex.chunk_index": 0.0,
                "reflex.chunk_age_s": 0.0, "reflex.guard": np.array([False, True]), "episode_index": 0,
                "task": "pick",
            })
        journal.flush()
    journal._fh.close()  # the process dies: no end-of-stream marker
    data = (tmp_path / "rows.arrows").read_bytes()
    size_after_two = len(data) - 200  # cut into the third batch
    (tmp_path / "torn.arrows").write_bytes(data[:size_after_two])
    table, clean = read_journal(tmp_path / "torn.arrows")
    assert table is not None and not clean
    assert table.column("reflex.step").to_pylist() == list(range(10))
    np.testing.assert_array_equal(table.column("observation.state").to_pylist()[7],
                                  np.float32(make_step(7).state.position))


def test_a_closed_episode_has_one_frame_per_row_in_order(tmp_path: Path) -> None:
    rec = _record(tmp_path, 25)
    root = tmp_path / "lerobot"
    assert rec.summary()["status"] == "complete" and lerobot_state(root) == "complete"
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    info = json.loads((root / "meta/info.json").read_text())
    assert set(data.column_names) == {k for k, f in info["features"].items() if f["dtype"] != "video"}
    assert info["features"]["observation.images.top"]["info"]["video.codec"] == "h264"
    assert data.column("timestamp").to_pylist() == [np.float32(i / 30) for i in range(25)]
    for cam, code in CAMS.items():
        frames = _video_frames(root / f"videos/observation.images.{cam}/chunk-000/file-000.mp4")
        assert len(frames) == 25
        for i, image in enumerate(frames):
            assert_frame_matches(image, code, i + 1, lossy=True, where=f"{cam} frame {i}")
    guard = data.column("reflex.guard").to_pylist()
    assert [g[1] for g in guard] == [i % 5 == 0 for i in range(25)]
    events = [json.loads(x) for x in (root / "meta/reflex/events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["type"] == "guard"] == [0, 5, 10, 15, 20]
    ep = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()[0]
    assert ep["dataset_from_index"] == 0 and ep["dataset_to_index"] == 25 and ep["length"] == 25
    assert ep["videos/observation.images.wrist/from_timestamp"] == 0.0
    assert ep["stats/observation.state/count"] == [25]


def test_repair_cuts_the_episode_to_rows_present_in_every_stream(tmp_path: Path) -> None:
    rec = _record(tmp_path, 40, close=False)  # flushed at 10, 20, 30, 40
    snapshot = tmp_path / "snapshot"
    shutil.copytree(tmp_path / "lerobot", snapshot)  # what a kill -9 would leave
    rec.close()
    wrist = snapshot / ".partial" / "wrist" / "episode-000000.mp4"
    wrist.write_bytes(wrist.read_bytes()[: wrist.stat().st_size * 2 // 3])  # the wrist video lags
    assert lerobot_state(snapshot) == "interrupted"
    report = repair_lerobot(snapshot)
    # the newest frame's fragment is written with the next frame, so its row waits too
    assert report["status"] == "repaired" and report["journal_rows"] == 39
    n = report["rows"]
    assert 0 < n < 39 and report["frames"] == {"top": n, "wrist": n} and report["episodes"] == 1
    data = pq.read_table(snapshot / "data/chunk-000/file-000.parquet")
    assert data.num_rows == n and data.column("reflex.step").to_pylist() == list(range(n))
    assert json.loads((snapshot / "meta/info.json").read_text())["total_frames"] == n
    for cam, code in CAMS.items():
        frames = _video_frames(snapshot / f"videos/observation.images.{cam}/chunk-000/file-000.mp4")
        assert len(frames) == n
        assert_frame_matches(frames[-1], code, n, lossy=True, where=f"last {cam} frame")
    assert not (snapshot / ".partial").exists()
    assert repair_lerobot(snapshot)["repaired"] is False  # idempotent


def test_an_episode_without_a_complete_row_is_excluded(tmp_path: Path) -> None:
    rec = LeRobotRecorder(tmp_path)
    rec.open(make_meta(cameras=("top",)))
    snapshot = tmp_path / "snapshot"
    shutil.copytree(tmp_path / "lerobot", snapshot)
    rec.close()
    assert repair_lerobot(snapshot)["status"] == "excluded"
    assert not (snapshot / "meta/info.json").exists()
    assert "no complete row" in json.loads((snapshot / "meta/reflex/recording.json").read_text())["reason"]
    assert lerobot_state(snapshot) == "excluded"


def test_rows_wait_for_the_first_frame_of_every_camera(tmp_path: Path) -> None:
    rec = LeRobotRecorder(tmp_path)
    rec.open(make_meta(cameras=("top", "wrist")))
    for i in range(8):
        frames = {"top": (0, i + 1)}
        if i >= 3 and i % 2 == 1:
            frames["wrist"] = (1, i)
        rec.write_step(make_step(i, frames))
    rec.close()
    assert rec.summary()["skipped_rows"] == 3 and rec.summary()["rows"] == 5
    data = pq.read_table(tmp_path / "lerobot/data/chunk-000/file-000.parquet").to_pydict()
    assert data["reflex.step"] == [3, 4, 5, 6, 7]
    assert [s[1] for s in data["reflex.frame_seq"]] == [3, 3, 5, 5, 7]  # repeated, never invented
    assert [n[1] for n in data["reflex.frame_new"]] == [True, False, True, False, True]
    wrist = _video_frames(tmp_path / "lerobot/videos/observation.images.wrist/chunk-000/file-000.mp4")
    for image, seq in zip(wrist, [3, 3, 5, 5, 7], strict=True):
        assert_frame_matches(image, 1, seq, lossy=True, where=f"wrist seq {seq}")


def test_odd_sized_frames_keep_full_chroma_and_size(tmp_path: Path) -> None:
    from test_record_support import expected_image

    from reflex.ports import Frame

    rec = LeRobotRecorder(tmp_path)
    rec.open(make_meta(cameras=("top",)))
    for i in range(6):
        step = make_step(i)
        step.frames = {"top": Frame(expected_image(0, i + 1, 127, 95), t_capture=step.t_tick, seq=i + 1)}
        rec.write_step(step)
    rec.close()
    feature = json.loads((tmp_path / "lerobot/meta/info.json").read_text())["features"]["observation.images.top"]
    assert feature["shape"] == [95, 127, 3] and feature["info"]["video.pix_fmt"] == "yuv444p"
    frames = _video_frames(tmp_path / "lerobot/videos/observation.images.top/chunk-000/file-000.mp4")
    assert frames[0].shape == (95, 127, 3) and len(frames) == 6


def test_a_control_rate_that_is_not_a_whole_fps_is_refused(tmp_path: Path) -> None:
    rec = LeRobotRecorder(tmp_path)
    with pytest.raises(ValueError, match=r"whole number of frames per second, got 12\.5"):
        rec.open(make_meta(rate=12.5))


def test_held_steps_keep_nan_actions_and_stats_ignore_them(tmp_path: Path) -> None:
    rec = LeRobotRecorder(tmp_path)
    rec.open(make_meta(cameras=("top",)))
    for i in range(6):
        rec.write_step(make_step(i, {"top": (0, i + 1)}, action=i % 3 != 0, applied=i % 3 != 0))
    rec.close()
    root = tmp_path / "lerobot"
    data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pydict()
    assert [bool(np.isnan(a[0])) for a in data["action"]] == [True, False, False, True, False, False]
    assert data["reflex.applied"] == [False, True, True, False, True, True]
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["action"]["max"][0] == pytest.approx(0.05) and stats["action"]["min"][0] == pytest.approx(0.01)


def test_tasks_are_indexed_by_their_text(tmp_path: Path) -> None:
    import pandas as pd

    rec = LeRobotRecorder(tmp_path)
    rec.open(make_meta(cameras=("top",)))
    for i in range(6):
        rec.write_step(make_step(i, {"top": (0, i + 1)}, task="pick" if i < 4 else "place"))
    rec.close()
    root = tmp_path / "lerobot"
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert tasks.index.name == "task" and list(tasks.index) == ["pick", "place"]
    assert list(tasks["task_index"]) == [0, 1]
    data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pydict()
    assert data["task_index"] == [0, 0, 0, 0, 1, 1]
    assert json.loads((root / "meta/info.json").read_text())["total_tasks"] == 2


def test_stats_match_numpy() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(5000, 3))
    hist = np.stack([np.bincount(pixels[:, c], minlength=256) for c in range(3)])
    got = image_stats(hist, frames=7)
    assert got is not None and got["count"] == [7]
    for c in range(3):
        x = pixels[:, c] / 255.0
        assert got["mean"][c][0][0] == pytest.approx(x.mean())
        assert got["std"][c][0][0] == pytest.approx(x.std())
        assert got["q50"][c][0][0] == pytest.approx(np.quantile(x, 0.5, method="inverted_cdf"))
        assert got["min"][c][0][0] == x.min() and got["max"][c][0][0] == x.max()
    values = rng.normal(size=(100, 4))
    values[::7, 1] = np.nan
    stats = vector_stats(values)
    assert stats is not None
    assert stats["mean"][1] == pytest.approx(np.nanmean(values[:, 1]))
    assert stats["q99"][0] == pytest.approx(np.quantile(values[:, 0], 0.99))
    assert vector_stats(np.full((5, 2), np.nan)) is None  # never made up


def test_long_sessions_are_split_into_episodes_the_loader_reads(tmp_path: Path) -> None:
    """Episodes stop at EPISODE_MAX_S (here 10 rows): each has its own videos and timestamps from 0."""
    from test_record_support import lerobot_load, require_readers

    rec = _record(tmp_path, 25, episode_rows=10)
    assert rec.summary()["episodes"] == 3
    root = tmp_path / "lerobot"
    info = json.loads((root / "meta/info.json").read_text())
    assert info["total_episodes"] == 3 and info["total_frames"] == 25 and info["splits"] == {"train": "0:3"}
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 10), (10, 20), (20, 25)]
    assert [e["videos/observation.images.top/file_index"] for e in episodes] == [0, 1, 2]
    data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pydict()
    assert data["episode_index"] == [0] * 10 + [1] * 10 + [2] * 5
    assert data["frame_index"] == [*range(10), *range(10), *range(5)] and data["index"] == list(range(25))
    require_readers()
    loaded = lerobot_load(root, tmp_path / "loader")
    assert loaded["len"] == 25 and loaded["num_episodes"] == 3
    for i in range(25):
        for cam, code in CAMS.items():
            assert_frame_matches(loaded["arrays"][f"observation.images.{cam}"][i], code, i + 1, lossy=True,
                                 where=f"item {i} {cam}")


def test_a_crash_in_a_later_episode_leaves_the_earlier_ones_whole(tmp_path: Path) -> None:
    rec = _record(tmp_path, 27, close=False, episode_rows=10)  # last flush: at the rotation to episode 2
    snapshot = tmp_path / "snapshot"
    shutil.copytree(tmp_path / "lerobot", snapshot)
    rec.close()
    report = repair_lerobot(snapshot)
    assert report["status"] == "repaired" and report["episodes"] == 2 and report["rows"] == 20
    episodes = pq.read_table(snapshot / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in episodes] == [10, 10]
    for cam, code in CAMS.items():
        for e in range(2):
            frames = _video_frames(snapshot / f"videos/observation.images.{cam}/chunk-000/file-{e:03d}.mp4")
            assert len(frames) == 10
            assert_frame_matches(frames[0], code, 10 * e + 1, lossy=True, where=f"episode {e} {cam}")

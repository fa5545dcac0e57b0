"""``--resume``: kill -9 during episode 2, resume, and get episodes 0, 1 and a new 2, nothing mixed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO, base_session, json_result, subprocess_env, write_session

pytest.importorskip("pyarrow")
pytest.importorskip("av")

TASKS = ["pick the red cube", "pick the blue cube", "stack them"]
STEPS = 8


def session(tmp_path: Path) -> Path:
    return write_session(tmp_path, base_session(
        mode="dry_run", control_rate_hz=30, max_steps=0,
        episodes={"count": 3, "steps": STEPS, "tasks": TASKS, "labels": "stdin"},
        record={"enabled": True, "formats": ["lerobot"]},
    ))


def events(root: Path) -> list[dict[str, Any]]:
    path = root / "lerobot/meta/reflex/events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line the kill tore
            out.append(json.loads(line))
    return out


def started(root: Path, index: int) -> bool:
    return any(e.get("kind") == "episode_start" and e["data"]["index"] == index for e in events(root))


def resume(config: Path, rec: Path, stdin: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json", "--record", str(rec),
         "--resume"], input=stdin, capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=REPO)
    return proc, json_result(proc)


def crash_in_episode_2(config: Path, rec: Path, labels: str = "s\nf\n", episode: int = 2,
                       extra: tuple[str, ...] = ()) -> None:
    """Labels for the episodes before ``episode`` only: it never ends; kill -9 once it has started."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json", "--record", str(rec), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        env=subprocess_env(), cwd=REPO,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(labels)
        proc.stdin.flush()
        deadline = time.monotonic() + 240  # a bound against a hang, not a timing assertion
        while not started(rec, episode):
            assert proc.poll() is None, f"the session ended before episode {episode}"
            assert time.monotonic() < deadline, f"episode {episode} never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_9_in_episode_2_then_resume(tmp_path: Path) -> None:
    config, rec = session(tmp_path), tmp_path / "rec"
    crash_in_episode_2(config, rec)
    before = [e for e in events(rec) if e.get("kind") == "episode_end"]
    assert [(e["data"]["index"], e["data"]["outcome"]) for e in before] == [(0, "success"), (1, "failure")]

    # a second session without --resume is refused: a recording is never overwritten
    plain = subprocess.run([sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json",
                            "--record", str(rec)], capture_output=True, text=True, timeout=300,
                           env=subprocess_env(), cwd=REPO)
    assert plain.returncode == 2 and "already holds a recording" in plain.stdout + plain.stderr

    proc, result = resume(config, rec, "s\n")
    assert proc.returncode == 0 and result["ok"], (result["errors"], proc.stderr[-3000:])
    eps = result["episodes"]
    assert eps["resumedAfter"] == 2
    assert [(o["index"], o["task"], o["outcome"]) for o in eps["outcomes"]] == [
        (0, TASKS[0], "success"), (1, TASKS[1], "failure"), (2, TASKS[2], "success")]
    assert eps["successRate"] == pytest.approx(2 / 3, abs=1e-4)
    lerobot = result["recording"]["formatStatus"]["lerobot"]
    assert lerobot["status"] == "complete" and lerobot["episodes"] == 3

    from test_record_support import lerobot_load, require_readers

    require_readers()
    loaded = lerobot_load(rec / "lerobot", tmp_path / "loader")
    arrays = loaded["arrays"]
    assert loaded["num_episodes"] == 3 and loaded["len"] == 3 * STEPS
    np.testing.assert_array_equal(arrays["episode_index"], np.repeat([0, 1, 2], STEPS))
    np.testing.assert_array_equal(arrays["frame_index"], np.tile(np.arange(STEPS), 3))
    np.testing.assert_array_equal(arrays["index"], np.arange(3 * STEPS))
    assert loaded["tasks"] == [t for t in TASKS for _ in range(STEPS)]
    # episodes 0 and 1 are the first session's steps 0..2*STEPS-1; the new episode 2 is the
    # resumed session's own first steps, none of the killed take's rows
    np.testing.assert_array_equal(arrays["reflex.step"][: 2 * STEPS], np.arange(2 * STEPS))
    np.testing.assert_array_equal(arrays["reflex.step"][2 * STEPS:], np.arange(STEPS))
    # the written float64 column (the loader hands out float32: 2 ms steps at a monotonic clock's
    # size, and a loaded host can run two ticks closer than that)
    import pyarrow.parquet as pq

    table = pq.read_table(sorted((rec / "lerobot" / "data").rglob("*.parquet")), columns=["index", "reflex.t_tick"])
    t_tick = table.sort_by("index").column("reflex.t_tick").to_numpy()
    assert t_tick.dtype == np.float64 and len(t_tick) == 3 * STEPS
    assert np.all(np.diff(t_tick) > 0), "rows of two sessions interleaved"


def test_resume_refuses_a_gap_and_touches_nothing(tmp_path: Path) -> None:
    config, rec = session(tmp_path), tmp_path / "rec"
    crash_in_episode_2(config, rec)
    path = rec / "lerobot/meta/reflex/events.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    # lose episode 0's end: episode 1 would follow nothing
    kept = [ln for ln in lines if not ('"episode_end"' in ln and '"index":0' in ln)]
    assert len(kept) == len(lines) - 1
    path.write_text("".join(kept))
    journal = (rec / "lerobot/.partial/rows.arrows").read_bytes()
    proc, result = resume(config, rec, "s\n")
    assert proc.returncode == 2 and not result["ok"]
    assert "a gap" in json.dumps(result) and "mix" in json.dumps(result)
    assert (rec / "lerobot/.partial/rows.arrows").read_bytes() == journal
    assert not (rec / ".reflex.lock").exists()  # the refused session let go of the directory


def test_resume_needs_an_episodes_recording(tmp_path: Path) -> None:
    config = session(tmp_path)
    proc, result = resume(config, tmp_path / "nothing", "")
    assert proc.returncode == 2 and "no recording to resume" in json.dumps(result)
    plain = write_session(tmp_path, base_session(record={"enabled": True, "formats": ["lerobot"]}), "plain.yaml")
    proc, result = resume(plain, tmp_path / "rec2", "")
    assert proc.returncode == 2 and "needs an episodes block" in json.dumps(result)
    # a finished recording made without episodes has no outcomes to number new episodes after
    rec = tmp_path / "plain-rec"
    first = subprocess.run([sys.executable, "-m", "reflex", "connect", "--config", str(plain), "--json", "--record",
                            str(rec)], capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=REPO)
    assert first.returncode == 0, first.stderr[-2000:]
    before = hashes(rec)
    proc, result = resume(write_session(tmp_path, base_session(
        max_steps=0, episodes={"count": 1, "steps": STEPS}, record={"enabled": True, "formats": ["lerobot"]},
    ), "eps.yaml"), rec, "")
    assert proc.returncode == 2 and "made without episodes" in json.dumps(result)
    assert hashes(rec) == before


# -- appending to a finished recording -----------------------------------------------------------
FIRST_TASKS, MORE_TASKS = ["pick the red cube", "pick the blue cube"], ["pick the blue cube", "stack them"]


def two_episodes(tmp_path: Path, name: str, tasks: list[str], **overrides: Any) -> Path:
    return write_session(tmp_path, base_session(**{
        "mode": "dry_run", "control_rate_hz": 30, "max_steps": 0,
        "episodes": {"count": 2, "steps": STEPS, "tasks": tasks, "labels": "stdin"},
        "record": {"enabled": True, "formats": ["lerobot"]}, **overrides,
    }), name)


def clean_two(tmp_path: Path) -> Path:
    rec = tmp_path / "rec"
    proc = subprocess.run(
        [sys.executable, "-m", "reflex", "connect", "--config", str(two_episodes(tmp_path, "first.yaml", FIRST_TASKS)),
         "--json", "--record", str(rec)], input="s\nf\n", capture_output=True, text=True, timeout=300,
        env=subprocess_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return rec


def hashes(rec: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(rec)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(rec.rglob("*")) if p.is_file()}


def test_resume_appends_episodes_to_a_finished_recording(tmp_path: Path) -> None:
    rec = clean_two(tmp_path)
    root = rec / "lerobot"
    before = hashes(root)
    proc, result = resume(two_episodes(tmp_path, "more.yaml", MORE_TASKS), rec, "s\nr\ns\n")
    assert proc.returncode == 0 and result["ok"], (result["errors"], proc.stderr[-3000:])
    eps = result["episodes"]
    assert eps["planned"] == 4 and eps["resumedAfter"] == 2 and eps["recorded"] == 4 and eps["reRecorded"] == 1
    assert [(o["index"], o["task"], o["outcome"]) for o in eps["outcomes"]] == [
        (0, FIRST_TASKS[0], "success"), (1, FIRST_TASKS[1], "failure"), (2, MORE_TASKS[0], "success"),
        (3, MORE_TASKS[1], "re-record"), (3, MORE_TASKS[1], "success")]
    assert eps["successRate"] == pytest.approx(3 / 4)

    # as LeRobot's writer resumes: the dataset's files untouched, the new episodes in the next files
    after = hashes(root)
    for name in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet",
                 "videos/observation.images.top/chunk-000/file-000.mp4",
                 "videos/observation.images.top/chunk-000/file-001.mp4"):
        assert after[name] == before[name], name
    for name in ("data/chunk-000/file-001.parquet", "meta/episodes/chunk-000/file-001.parquet",
                 "videos/observation.images.top/chunk-000/file-002.mp4",
                 "videos/observation.images.top/chunk-000/file-003.mp4"):
        assert name in after and name not in before, name
    assert not (root / ".partial").exists()
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"], info["splits"]) == (
        4, 4 * STEPS, 3, {"train": "0:4"})
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [4 * STEPS]
    assert stats["observation.images.top"]["count"] == [4 * STEPS]

    from test_record_support import lerobot_load, require_readers

    require_readers()
    loaded = lerobot_load(root, tmp_path / "loader")
    arrays = loaded["arrays"]
    assert loaded["num_episodes"] == 4 and loaded["len"] == 4 * STEPS
    np.testing.assert_array_equal(arrays["episode_index"], np.repeat([0, 1, 2, 3], STEPS))
    np.testing.assert_array_equal(arrays["frame_index"], np.tile(np.arange(STEPS), 4))
    np.testing.assert_array_equal(arrays["index"], np.arange(4 * STEPS))
    tasks = [*FIRST_TASKS, *MORE_TASKS]
    assert loaded["tasks"] == [t for t in tasks for _ in range(STEPS)]
    # the tasks table is extended: a task the dataset had keeps its index, a new one comes after
    np.testing.assert_array_equal(arrays["task_index"], np.repeat([0, 1, 1, 2], STEPS))
    # the appended episodes are the new session's rows (its own step numbers), not a re-recorded take's
    np.testing.assert_array_equal(arrays["reflex.step"][2 * STEPS:3 * STEPS], np.arange(STEPS))
    assert arrays["reflex.step"][3 * STEPS] == 2 * STEPS
    # the dataset's stats and the new episodes' pooled: those of all four episodes' rows
    state = arrays["observation.state"].astype(np.float64)
    got = {k: np.asarray(v) for k, v in stats["observation.state"].items()}
    for key, want in (("mean", state.mean(0)), ("std", state.std(0)), ("min", state.min(0)), ("max", state.max(0))):
        np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6, err_msg=key)


def test_an_incompatible_resume_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    rec = clean_two(tmp_path)
    before = hashes(rec)
    # the config alone shows it: refused before anything is built (exit 2), the field named
    proc, result = resume(two_episodes(tmp_path, "fps.yaml", MORE_TASKS, control_rate_hz=15), rec, "s\ns\n")
    assert proc.returncode == 2 and not result["ok"]
    assert "control_rate_hz (fps): recorded 30, this session 15" in json.dumps(result)
    # only the connected robot shows it (its cameras): refused before anything is written or powered
    cams = {"top": {"kind": "sim"}, "wrist": {"kind": "sim"}}
    proc, result = resume(two_episodes(tmp_path, "cams.yaml", MORE_TASKS, cameras=cams), rec, "s\ns\n")
    assert proc.returncode == 3 and not result["ok"] and result["safeStops"] == 0
    assert "cameras: recorded ['top'], this session ['top', 'wrist']" in json.dumps(result)
    # formats that cannot be appended to are refused up front
    more = {"enabled": True, "formats": ["lerobot", "mcap"]}
    proc, result = resume(two_episodes(tmp_path, "fmt.yaml", MORE_TASKS, record=more), rec, "s\ns\n")
    assert proc.returncode == 2 and "not appended to" in json.dumps(result)
    assert hashes(rec) == before  # every file byte for byte, and no lock left behind


def test_kill_9_while_appending_keeps_the_dataset_then_resume_finishes_the_append(tmp_path: Path) -> None:
    rec = clean_two(tmp_path)
    root = rec / "lerobot"
    before = hashes(root)
    more = two_episodes(tmp_path, "more.yaml", MORE_TASKS)
    crash_in_episode_2(more, rec, labels="s\n", episode=3, extra=("--resume",))
    # the dataset's files are as they were: LeRobot reads its 2 episodes, nothing of the append
    after = hashes(root)
    assert {k: v for k, v in after.items() if not k.startswith((".partial", "meta/reflex"))} == {
        k: v for k, v in before.items() if not k.startswith("meta/reflex")}
    proc, result = resume(more, rec, "f\n")
    assert proc.returncode == 0 and result["ok"], (result["errors"], proc.stderr[-3000:])
    eps = result["episodes"]
    assert eps["resumedAfter"] == 3 and eps["planned"] == 4
    assert [(o["index"], o["task"], o["outcome"]) for o in eps["outcomes"]] == [
        (0, FIRST_TASKS[0], "success"), (1, FIRST_TASKS[1], "failure"), (2, MORE_TASKS[0], "success"),
        (3, MORE_TASKS[1], "failure")]
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 4 * STEPS, 3)
    import pyarrow.parquet as pq

    rows = pq.read_table(root / "data/chunk-000/file-001.parquet").to_pydict()
    assert rows["episode_index"] == [2] * STEPS + [3] * STEPS
    assert rows["index"] == list(range(2 * STEPS, 4 * STEPS))
    assert rows["task_index"] == [1] * STEPS + [2] * STEPS


def test_kill_9_while_appending_then_repair_finishes_the_append(tmp_path: Path) -> None:
    from conftest import run_cli

    rec = clean_two(tmp_path)
    root = rec / "lerobot"
    before = hashes(root)
    crash_in_episode_2(two_episodes(tmp_path, "more.yaml", MORE_TASKS), rec, labels="s\n", episode=3,
                       extra=("--resume",))
    repair = run_cli(["recordings", "repair", str(rec), "--json"])
    assert repair.returncode == 0, repair.stdout + repair.stderr
    info = json.loads((root / "meta/info.json").read_text())
    after = hashes(root)
    for name in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet",
                 "videos/observation.images.top/chunk-000/file-000.mp4"):
        assert after[name] == before[name], name
    import pyarrow.parquet as pq

    rows = pq.read_table(root / "data/chunk-000/file-001.parquet").to_pydict()
    # repair keeps what is there: the appended episode 2, and the rows of the cut-short episode 3
    # that reached the disk before the kill (none if it came before the first flush)
    cut_short = len(rows["index"]) - STEPS
    assert rows["episode_index"] == [2] * STEPS + [3] * cut_short
    assert rows["index"] == list(range(2 * STEPS, 3 * STEPS + cut_short))
    assert rows["task_index"] == [1] * STEPS + [2] * cut_short
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (
        3 + (cut_short > 0), 3 * STEPS + cut_short, 2 + (cut_short > 0))
    if cut_short:  # its last episode has no outcome: appending after it would be a gap
        proc, result = resume(two_episodes(tmp_path, "again.yaml", MORE_TASKS), rec, "s\ns\n")
        assert proc.returncode == 2 and "a gap" in json.dumps(result)

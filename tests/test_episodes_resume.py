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


def crash_in_episode_2(config: Path, rec: Path) -> None:
    """Labels for episodes 0 and 1 only: episode 2 never ends; kill -9 once it has started."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json", "--record", str(rec)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        env=subprocess_env(), cwd=REPO,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write("s\nf\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 240  # a bound against a hang, not a timing assertion
        while not started(rec, 2):
            assert proc.poll() is None, "the session ended before episode 2"
            assert time.monotonic() < deadline, "episode 2 never started"
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
    t_tick = arrays["reflex.t_tick"]
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


def test_resume_needs_an_interrupted_episodes_recording(tmp_path: Path) -> None:
    config = session(tmp_path)
    proc, result = resume(config, tmp_path / "nothing", "")
    assert proc.returncode == 2 and "no recording to resume" in json.dumps(result)
    plain = write_session(tmp_path, base_session(record={"enabled": True, "formats": ["lerobot"]}), "plain.yaml")
    proc, result = resume(plain, tmp_path / "rec2", "")
    assert proc.returncode == 2 and "needs an episodes block" in json.dumps(result)

"""Sessions run as episodes: a LeRobot episode per trial with its task, resets, operator labels."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import REPO, base_session, json_result, subprocess_env, write_session

pytest.importorskip("pyarrow")
pytest.importorskip("av")

from reflex.config.loader import load_session_config
from reflex.errors import ConfigError
from reflex.runtime.labels import parse_label
from reflex.runtime.session import run_session_file

TASKS = ["pick the red cube", "pick the blue cube", "stack them"]
RESET_POSE = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
STEPS = 6


def episodes_session(tmp_path: Path, mode: str = "apply_actions", **episodes: Any) -> Path:
    block: dict[str, Any] = {"count": 3, "steps": STEPS, "tasks": TASKS,
                             "reset": {"kind": "pose", "pose": RESET_POSE, "max_steps": 100000}}
    block.update(episodes)
    session = base_session(
        mode=mode, control_rate_hz=30, max_steps=0, task="the session's task",
        episodes=block, record={"enabled": True, "formats": ["lerobot", "jsonl"], "dir": str(tmp_path / "rec")},
    )
    return write_session(tmp_path, session)


def connect(config: Path, stdin: str = "", *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json", *extra],
        input=stdin, capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=REPO,
    )
    return proc, json_result(proc)


def test_labels_parse_keys_and_words() -> None:
    assert [parse_label(x) for x in ["s", " Success\n", "f", "r", "re-record", "q", "stop", "x", ""]] == [
        "success", "success", "failure", "re-record", "re-record", "stop", "stop", None, None]


def test_config_refuses_unclear_episode_lengths_and_task_lists(tmp_path: Path) -> None:
    for bad, where in [({"count": 2}, "steps or duration_s"),
                       ({"count": 2, "steps": 3, "duration_s": 1.0}, "steps or duration_s"),
                       ({"count": 3, "steps": 3, "tasks": ["a", "b"]}, "2 entries for 3 episodes"),
                       ({"count": 2, "steps": 3, "reset": {"kind": "pose"}}, "needs reset.pose"),
                       ({"count": 2, "steps": 3, "reset": {"kind": "pose", "pose": [0.0]}}, "1 entries")]:
        path = write_session(tmp_path, base_session(max_steps=0, episodes=bad))
        with pytest.raises(ConfigError) as err:
            load_session_config(path)
        assert where in str(err.value), (bad, str(err.value))
    path = write_session(tmp_path, base_session(max_steps=5, episodes={"count": 2, "steps": 3}))
    with pytest.raises(ConfigError, match="leave max_steps and duration_s unset"):
        load_session_config(path)
    ok = load_session_config(write_session(tmp_path, base_session(
        max_steps=0, control_rate_hz=50, episodes={"count": 2, "duration_s": 0.1, "tasks": ["one"]})))
    assert ok.episodes is not None and ok.episodes.steps_at(50) == 5 and ok.episodes.task_for(1, "x") == "one"


def test_three_episodes_with_resets_labels_and_a_rerecord(tmp_path: Path) -> None:
    """Scripted stdin labels each episode; a re-record discards that take and runs it again."""
    config = episodes_session(tmp_path, labels="stdin")
    proc, result = connect(config, "s\nbogus\nf\nr\ns\n")
    assert proc.returncode == 0 and result["ok"], (result["errors"], proc.stderr[-2000:])
    eps = result["episodes"]
    assert [(o["index"], o["take"], o["task"], o["outcome"], o["steps"]) for o in eps["outcomes"]] == [
        (0, 0, TASKS[0], "success", STEPS), (1, 1, TASKS[1], "failure", STEPS),
        (2, 2, TASKS[2], "re-record", STEPS), (2, 3, TASKS[2], "success", STEPS)]
    assert (eps["recorded"], eps["reRecorded"], eps["successes"], eps["failures"]) == (3, 1, 2, 1)
    assert eps["successRate"] == pytest.approx(2 / 3, abs=1e-4)
    assert "not a label" in proc.stderr  # unknown input is said, then waited past
    assert result["steps"] == 4 * STEPS and result["safeStops"] == 0
    lerobot = result["recording"]["formatStatus"]["lerobot"]
    assert lerobot["status"] == "complete" and lerobot["episodes"] == 3 and lerobot["rows"] == 4 * STEPS
    events = [json.loads(line) for line in (tmp_path / "rec/lerobot/meta/reflex/events.jsonl").open()]
    kinds = [e["kind"] for e in events if e["type"] == "event"]
    assert kinds.count("reset") == 3 and kinds.count("episode_discarded") == 1

    # the dataset, as LeRobot's own loader reads it: three episodes, the right task each
    from test_record_support import lerobot_load, require_readers

    require_readers()
    loaded = lerobot_load(tmp_path / "rec/lerobot", tmp_path / "loader")
    arrays = loaded["arrays"]
    assert loaded["num_episodes"] == 3 and loaded["len"] == 3 * STEPS
    np.testing.assert_array_equal(arrays["episode_index"], np.repeat([0, 1, 2], STEPS))
    np.testing.assert_array_equal(arrays["frame_index"], np.tile(np.arange(STEPS), 3))
    np.testing.assert_array_equal(arrays["index"], np.arange(3 * STEPS))
    assert loaded["tasks"] == [t for t in TASKS for _ in range(STEPS)]
    # the kept episode 2 is the second take (steps 3*STEPS..), not the discarded one
    np.testing.assert_array_equal(arrays["reflex.step"][2 * STEPS:], np.arange(3 * STEPS, 4 * STEPS))
    # after each reset the episode starts at the reset pose (reached within the tolerance)
    for e in (1, 2):
        first = arrays["observation.state"][e * STEPS]
        assert np.max(np.abs(first - np.array(RESET_POSE))) < 0.05, (e, first)


def test_dry_run_reset_never_moves_and_stop_label_ends_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In dry_run the reset pose is skipped (nothing is sent); 'q' stops after episode 0."""
    config = episodes_session(tmp_path, mode="dry_run", labels="stdin")
    monkeypatch.setattr(sys, "stdin", io.StringIO("s\nq\n"))
    result = run_session_file(config)
    assert result.ok, result.errors
    assert result.applied_steps == 0
    eps = result.episodes
    assert eps is not None and eps["stoppedBy"] == "operator"
    assert [o["outcome"] for o in eps["outcomes"]] == ["success", None]
    events = [json.loads(line) for line in (tmp_path / "rec/lerobot/meta/reflex/events.jsonl").open()]
    resets = [e["message"] for e in events if e.get("kind") == "reset"]
    assert resets == ["reset before episode 1: skipped (dry_run never moves)"]


def test_input_ending_stops_the_episodes_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = episodes_session(tmp_path, mode="dry_run", labels="stdin", reset={"kind": "wait"})
    monkeypatch.setattr(sys, "stdin", io.StringIO("s\n\n"))  # label, Enter after the reset, then EOF
    result = run_session_file(config)
    assert result.ok, result.errors
    eps = result.episodes
    assert eps is not None and eps["stoppedBy"] == "input ended"
    assert [(o["index"], o["outcome"]) for o in eps["outcomes"]] == [(0, "success"), (1, None)]
    assert result.recording is not None and result.recording["formatStatus"]["lerobot"]["episodes"] == 2


def test_unlabelled_episodes_are_done(tmp_path: Path) -> None:
    config = episodes_session(tmp_path, mode="dry_run", reset={"kind": "none"})
    result = run_session_file(config)
    assert result.ok, result.errors
    eps = result.episodes
    assert eps is not None and [o["outcome"] for o in eps["outcomes"]] == ["done"] * 3
    assert eps["successRate"] is None and result.steps == 3 * STEPS
    assert yaml.safe_load(config.read_text())["episodes"]["count"] == 3


def test_the_documented_command_runs_as_written(tmp_path: Path) -> None:
    """docs/episodes.md: the piped-labels command on configs/sim_episodes.yaml."""
    [line] = [ln for ln in (REPO / "docs/episodes.md").read_text().splitlines()
              if ln.startswith("printf ") and "/tmp/episodes-demo" in ln]
    command = line.replace("reflex connect", f"{sys.executable} -m reflex connect").replace(
        "/tmp/episodes-demo", str(tmp_path / "rec"))
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                          env=subprocess_env(), cwd=REPO)
    result = json_result(proc)
    assert proc.returncode == 0 and result["ok"], (result["errors"], proc.stderr[-2000:])
    eps = result["episodes"]
    assert [o["outcome"] for o in eps["outcomes"]] == ["success", "failure", "success"]
    assert [o["steps"] for o in eps["outcomes"]] == [60] * 3 and eps["successRate"] == pytest.approx(0.6667)
    assert result["recording"]["formatStatus"]["lerobot"]["episodes"] == 3


def test_the_documented_append_commands_run_as_written(tmp_path: Path) -> None:
    """docs/episodes.md: three episodes, then --resume with three more into the same dataset."""
    lines = [ln for ln in (REPO / "docs/episodes.md").read_text().splitlines()
             if ln.startswith("printf ") and "/tmp/episodes-append" in ln]
    assert len(lines) == 2 and "--resume" in lines[1]
    results = []
    for line in lines:
        command = line.replace("reflex connect", f"{sys.executable} -m reflex connect").replace(
            "/tmp/episodes-append", str(tmp_path / "rec"))
        proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                              env=subprocess_env(), cwd=REPO)
        result = json_result(proc)
        assert proc.returncode == 0 and result["ok"], (result["errors"], proc.stderr[-2000:])
        results.append(result)
    eps = results[1]["episodes"]
    assert (eps["planned"], eps["resumedAfter"], eps["recorded"]) == (6, 3, 6)
    assert [o["outcome"] for o in eps["outcomes"]] == ["success", "failure", "success"] * 1 + ["success"] * 3
    assert [o["index"] for o in eps["outcomes"]] == list(range(6))
    assert results[1]["recording"]["formatStatus"]["lerobot"]["episodes"] == 6
    info = json.loads((tmp_path / "rec/lerobot/meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"]) == (6, 6 * 60)


def test_ctrl_c_while_holding_for_the_operator_stops_like_anywhere_else(tmp_path: Path) -> None:
    """apply_actions: while the session waits for a label the motors get hold commands every tick;
    one SIGINT there ends the session cleanly (no safe stop), the episode kept, unlabelled."""
    import signal
    import time

    from reflex_test_plugins import read_journal

    journal = tmp_path / "journal.jsonl"
    session = base_session(
        mode="apply_actions", control_rate_hz=30, max_steps=0,
        hardware={"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal)}},
        episodes={"count": 3, "steps": STEPS, "tasks": TASKS, "labels": "stdin",
                  "reset": {"kind": "pose", "pose": RESET_POSE}},
        record={"enabled": True, "formats": ["lerobot"], "dir": str(tmp_path / "rec")},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "connect", "--config", str(write_session(tmp_path, session)), "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(), cwd=REPO,
    )
    deadline = time.monotonic() + 120  # a bound against a hang, not a timing assertion

    def applies() -> int:
        return sum(1 for e in read_journal(journal) if e["call"] == "apply")

    while applies() < STEPS + 10:  # the episode's steps, then hold commands while no label comes
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    out = proc.stdout.read()  # stdin stays open: the stop comes from the signal, not an end of input
    proc.wait(timeout=120)
    err = proc.stderr.read()
    proc.stdin.close()
    result = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 0 and result["ok"], (result["errors"], err[-2000:])
    assert result["stopReason"] == "signal:SIGINT" and result["safeStops"] == 0
    eps = result["episodes"]
    assert eps["stoppedBy"] == "signal" and [o["outcome"] for o in eps["outcomes"]] == [None]
    assert result["steps"] == STEPS and result["recording"]["formatStatus"]["lerobot"]["episodes"] == 1
    calls = [e["call"] for e in read_journal(journal)]
    assert calls[-1] == "close" and "safe_stop" not in calls


def connector_session(tmp_path: Path, mode: str) -> Path:
    hardware = {"kind": "subprocess", "config": {
        "protocol": "persistent", "cwd": str(REPO),
        "command": [sys.executable, "connectors/sim_arm.py", "--outcomes", "success,failure"],
        "safe_stop_command": [sys.executable, "-c", "import sys; sys.stdin.read()"],
        "command_timeout_s": 5.0,
    }}
    return write_session(tmp_path, base_session(
        mode=mode, control_rate_hz=30, max_steps=0, hardware=hardware, cameras={},
        episodes={"count": 3, "steps": STEPS, "tasks": TASKS, "labels": "connector", "reset": {"kind": "command"}},
        record={"enabled": True, "formats": ["lerobot"], "dir": str(tmp_path / "rec")},
    ))


def test_a_subprocess_connector_resets_and_reports_outcomes(tmp_path: Path) -> None:
    """The contract's optional 'reset': the connector puts the arm home between episodes and its
    reply's outcome becomes the episode's."""
    result = run_session_file(connector_session(tmp_path, "apply_actions"))
    assert result.ok, result.errors
    eps = result.episodes
    assert eps is not None and [o["outcome"] for o in eps["outcomes"]] == ["success", "failure", "success"]
    assert eps["successRate"] == pytest.approx(2 / 3, abs=1e-4)
    events = [json.loads(line) for line in (tmp_path / "rec/lerobot/meta/reflex/events.jsonl").open()]
    assert [e["message"] for e in events if e.get("kind") == "reset"] == [
        f"reset after episode {i}: the connector's reset" for i in range(3)]
    import pyarrow.parquet as pq

    data = pq.read_table(tmp_path / "rec/lerobot/data/chunk-000/file-000.parquet")
    assert data.column("episode_index").to_pylist() == [e for e in range(3) for _ in range(STEPS)]
    states = np.array(data.column("observation.state").to_pylist())
    home = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0] * 2)  # where sim_arm's reset puts the arm
    for e in (1, 2):  # each episode after a reset starts where the connector's reset left the arm
        np.testing.assert_allclose(states[e * STEPS], home, atol=1e-6)
    assert np.max(np.abs(states[STEPS - 1] - home)) > 1e-3  # the policy had moved it away


def test_dry_run_never_sends_the_connector_reset(tmp_path: Path) -> None:
    result = run_session_file(connector_session(tmp_path, "dry_run"))
    assert result.ok, result.errors
    eps = result.episodes
    assert eps is not None and [o["outcome"] for o in eps["outcomes"]] == ["done"] * 3
    events = [json.loads(line) for line in (tmp_path / "rec/lerobot/meta/reflex/events.jsonl").open()]
    assert [e["message"] for e in events if e.get("kind") == "reset"] == [
        f"reset after episode {i}: skipped (dry_run never moves)" for i in range(3)]


def test_the_live_status_line_shows_the_episode_and_what_it_waits_for(tmp_path: Path) -> None:
    from reflex.cli.live import status_line
    from reflex.runtime.live import LiveSnapshot

    snap = LiveSnapshot(t=1.0, steps=20, rate_hz=30.0, lateness_p99_ms=None, chunk_age_ms=None, chunks=2,
                        clamp_delta=0, clamp_limit=0, stale_steps=0, starved_steps=0, record_backlog_kib=None,
                        record_dropped=0, seam_jump=None, episode="ep 1/3 label? [s]uccess")
    assert status_line(snap, 200).startswith("ep 1/3 label? [s]uccess")

    seen: list[str] = []

    class Watch:  # a SessionWatcher: reads the runner's status from its own thread, as the live line does
        def running(self, session: Any) -> None:
            seen.append(session.episodes.status())

        def finished(self) -> None:
            pass

    config = episodes_session(tmp_path, mode="dry_run", reset={"kind": "none"})
    result = run_session_file(config, watchers=[Watch()])  # type: ignore[list-item]
    assert result.ok and seen == ["ep 0/3"]

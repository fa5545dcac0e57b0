"""``hardware.kind: replay``: a recorded session drives ``reflex connect`` offline."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import write_session
from replay_testutil import REPLAY_SESSION, SAMPLE, record, replay_cli

from reflex.errors import ConfigError
from reflex.replay.readers import read_recording
from reflex.runtime.session import run_session_file


def replay_hw_session(recording: Path, **overrides: Any) -> dict[str, Any]:
    session: dict[str, Any] = {
        "mode": "dry_run",
        "control_rate_hz": 50,
        "max_steps": 40,
        "task": "wave both arms",
        "target": {"kind": "local", "export": "builtin:demo"},
        "hardware": {"kind": "replay", "config": {"recording": str(recording), "format": "jsonl"}},
        "record": {"formats": ["jsonl"]},
    }
    session.update(overrides)
    return session


def test_the_sample_replay_session_completes_and_sees_the_recorded_observations(tmp_path: Path) -> None:
    out = tmp_path / "replayed"
    result = run_session_file(REPLAY_SESSION, record_dir=str(out))
    assert result.ok, result.errors
    assert result.exit_code == 0 and result.steps == 75 and result.applied_steps == 0
    assert result.cameras["top"]["newFrames"] > 0  # the hardware's recorded camera fed the policy
    source = read_recording(SAMPLE, "jsonl")[0]
    new = read_recording(out, "jsonl")[0]
    assert len(new.steps) == 75 and new.meta.camera_names == ("top",)
    # Every state and frame served is a recorded one, in recorded order, starting at step 0.
    # (Which recorded step a tick gets follows the clock, so the exact pairing is not asserted.)
    index = {tuple(s.state): s.step for s in source.steps}
    served = [index[tuple(s.state)] for s in new.steps]
    assert served[0] == 0 and served == sorted(served) and served[-1] >= 50
    src_frames = {f.seq: f for s in source.steps for f in s.frames.values()}
    new_frames = [f for s in new.steps for f in s.frames.values()]
    assert new_frames and all(f.seq in src_frames for f in new_frames)
    assert [f.seq for f in new_frames] == sorted(f.seq for f in new_frames)
    for f in new_frames[:3]:
        np.testing.assert_array_equal(f.load(), src_frames[f.seq].load())
    # and the new recording is itself a faithful, replayable recording
    code, payload, _ = replay_cli(str(out), "--target", "builtin:demo", "--fail-on", "reproduce")
    assert code == 0, payload
    assert payload["episodes"][0]["executed"]["errors"]["overall"]["maxAbs"] <= 1e-5


def test_more_steps_than_recorded_is_a_clear_error(tmp_path: Path) -> None:
    short = record(tmp_path, "short", ["jsonl"], steps=30, rate=50)
    config = write_session(tmp_path, replay_hw_session(short, max_steps=80))
    result = run_session_file(config, no_record=True)
    assert not result.ok and result.exit_code == 1
    message = " ".join(result.errors)
    assert "the recording ended" in message and "max_steps <= 30" in message
    assert result.steps < 80


def test_at_end_stop_ends_the_session_cleanly(tmp_path: Path) -> None:
    short = record(tmp_path, "short", ["jsonl"], steps=30, rate=50)
    session = replay_hw_session(short, max_steps=0)  # run until the recording runs out
    session["hardware"]["config"]["at_end"] = "stop"
    result = run_session_file(write_session(tmp_path, session), no_record=True)
    assert result.ok, result.errors
    assert result.stop_reason == "source_exhausted" and result.safe_stops == 0
    assert 25 <= result.steps <= 60  # the recorded 30 steps at their pace, plus the end-of-data grace


def test_at_end_loop_starts_over(tmp_path: Path) -> None:
    short = record(tmp_path, "short", ["jsonl"], steps=30, rate=50)
    session = replay_hw_session(short, max_steps=70)
    session["hardware"]["config"]["at_end"] = "loop"
    result = run_session_file(write_session(tmp_path, session), record_dir=str(tmp_path / "looped"))
    assert result.ok, result.errors
    looped = read_recording(tmp_path / "looped", "jsonl")[0]
    source = read_recording(short, "jsonl")[0]
    index = {tuple(s.state): s.step for s in source.steps}
    served = [index[tuple(s.state)] for s in looped.steps]  # every state served is a recorded one
    wraps = [(a, b) for a, b in itertools.pairwise(served) if b < a]
    assert wraps and all(a >= 25 and b <= 3 for a, b in wraps)  # from the end back to the start


def test_replay_hardware_never_applies(tmp_path: Path) -> None:
    config = write_session(tmp_path, replay_hw_session(SAMPLE, mode="apply_actions"))
    with pytest.raises(ConfigError) as info:
        run_session_file(config)
    assert "apply_actions" in str(info.value) and "replay" in str(info.value)


def test_a_missing_recording_is_a_setup_error(tmp_path: Path) -> None:
    config = write_session(tmp_path, replay_hw_session(tmp_path / "gone"))
    result = run_session_file(config, no_record=True)
    assert result.exit_code == 3 and result.steps == 0
    assert "hardware" in result.errors[0] and "no such file" in result.errors[0]


def test_relative_recording_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    record(tmp_path, "short", ["jsonl"], steps=30, rate=50)
    (tmp_path / "cfg").mkdir()
    session = replay_hw_session(Path("..") / "short", max_steps=10)
    config = write_session(tmp_path / "cfg", session)
    assert run_session_file(config, no_record=True).ok

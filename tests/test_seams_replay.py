"""``reflex replay`` honours the recorded execution settings: a crossfaded or ensembled session
re-run with its own chunks reproduces every applied action exactly (LeRobot: to its float32
precision) in every format; the same recording judged as a hard switch does not."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import base_session, write_session

from reflex.replay.executed import executed_actions
from reflex.replay.readers import read_recording
from reflex.runtime.session import run_session_file


def record(tmp_path: Path, execution: dict[str, Any], formats: list[str]) -> Path:
    data = base_session(
        mode="apply_actions", control_rate_hz=50, max_steps=120,
        target={"kind": "reflex_test_plugins:OffsetTarget", "config": {"offset": 0.02}},
        execution=execution, record={"formats": formats, "dir": str(tmp_path / "rec")},
        # without a horizon: a switch about every 0.5 s; with one, no margin (so a loaded machine's
        # latency stays well inside the horizon)
        chunking={"prefetch_margin_s": 0.0 if execution.get("horizon") else 0.5},
    )
    result = run_session_file(write_session(tmp_path, data))
    assert result.ok, result.errors
    assert result.seams["switches"] >= 2
    return tmp_path / "rec"


@pytest.mark.parametrize(
    "execution",
    [{"horizon": 15, "blend": "crossfade", "blend_s": 0.1}, {"horizon": 10, "blend": "ensemble"},
     {"blend": "crossfade", "blend_s": 0.2}],
    ids=["crossfade-horizon", "ensemble-horizon", "crossfade-on-arrival"],
)
@pytest.mark.parametrize("fmt", ["jsonl", "mcap", "lerobot", "rerun"])
def test_a_blended_session_replays_its_applied_actions_exactly(
    tmp_path: Path, execution: dict[str, Any], fmt: str
) -> None:
    (episode,) = read_recording(record(tmp_path, execution, [fmt]), fmt)
    own = {c.chunk_id: c.actions for c in episode.chunks}
    executed = executed_actions(episode, own)
    assert len(executed.steps) >= 110 and not executed.rejected_steps
    if fmt == "lerobot":  # LeRobot keeps actions, states and chunks as float32: equal to that precision
        np.testing.assert_allclose(executed.replayed, executed.recorded, rtol=0, atol=1e-6)
    else:
        assert np.array_equal(executed.replayed, executed.recorded)

    hard = dataclasses.replace(
        episode.meta, config_resolved={**episode.meta.config_resolved, "execution": {"blend": "none"}}
    )
    as_hard = executed_actions(dataclasses.replace(episode, meta=hard), own)
    assert np.max(np.abs(as_hard.replayed - as_hard.recorded)) > 1e-4  # the settings matter


@pytest.mark.parametrize("execution", [{"horizon": 25}, {"blend": "crossfade"}], ids=["horizon", "on-arrival"])
def test_a_prefix_conditioned_session_replays_its_guided_chunks(tmp_path: Path, execution: dict[str, Any]) -> None:
    """builtin:demo_flow guided by the plan: replay rebuilds each chunk's prefix from the recorded
    chunks and ticks, so the guided chunks (and the applied actions) reproduce."""
    from replay_testutil import replay_cli

    data = base_session(mode="apply_actions", control_rate_hz=50, max_steps=100, cameras={},
                        target={"kind": "local", "export": "builtin:demo_flow"}, execution=execution,
                        record={"formats": ["jsonl"], "dir": str(tmp_path / "rec")})
    result = run_session_file(write_session(tmp_path, data))
    assert result.ok, result.errors
    assert result.seams["prefix"] is True and result.chunks["received"] >= 3
    code, payload, output = replay_cli(str(tmp_path / "rec"), "--target", "builtin:demo_flow",
                                       "--fail-on", "reproduce", "--fail-on", "max_abs=1e-5,step_max_abs=1e-5")
    assert code == 0, output
    (episode,) = payload["episodes"]
    assert episode["determinism"]["status"] == "reproduced"
    assert episode["chunks"]["replayed"] == result.chunks["received"]

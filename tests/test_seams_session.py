"""Seam metrics through a real ``reflex connect`` (sim robot, demo policy whose chunks disagree):
in ``--json``, in the recording's events and in the human summary. Timing-independent checks
only; the figures themselves are tested in simulated time (test_seams.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import base_session, json_result, run_cli, write_session


def session(tmp_path: Path, execution: dict[str, Any]) -> Path:
    data = base_session(
        control_rate_hz=50, max_steps=150,
        target={"kind": "reflex_test_plugins:OffsetTarget", "config": {"offset": 0.02}},
        execution=execution,
        record={"formats": ["jsonl"], "dir": str(tmp_path / "rec")},
    )
    return write_session(tmp_path, data)


def events(tmp_path: Path) -> list[dict[str, Any]]:
    (steps,) = (tmp_path / "rec").rglob("steps.jsonl")
    lines = [json.loads(line) for line in steps.read_text().splitlines()]
    return [e for e in lines if e.get("type") == "event"]


def test_seams_are_in_the_json_result_the_recording_and_the_summary(tmp_path: Path) -> None:
    # horizons and fades generous enough that a loaded machine's stalls neither make the latency
    # check refuse the horizon nor skip a whole crossfade
    path = session(tmp_path, {"horizon": 20, "blend": "crossfade", "blend_s": 0.2})
    proc = run_cli(["connect", str(path), "--json"])
    result = json_result(proc)
    assert result["ok"], result["errors"]
    seams = result["seams"]
    assert seams["blend"] == "crossfade" and seams["horizonActions"] == 20 and seams["blendS"] == 0.2
    assert seams["switches"] >= 3
    for key in ("gap", "jump"):
        assert set(seams[key]) == {"p50", "max", "perJoint"}
        assert len(seams[key]["perJoint"]) == 14
    assert seams["jump"]["max"] < seams["gap"]["max"]  # the crossfade spread the disagreement
    assert seams["jerkP99"] is not None

    recorded = events(tmp_path)
    per_switch = [e for e in recorded if e["kind"] == "seam"]
    assert len(per_switch) == seams["switches"]
    assert len(per_switch[0]["data"]["jump"]) == 14 and per_switch[0]["data"]["chunkId"] >= 2
    (summary,) = [e for e in recorded if e["kind"] == "seams"]
    assert summary["data"]["switches"] == seams["switches"]

    human = run_cli(["connect", str(path), "--no-record"])
    assert human.returncode == 0, human.stderr
    assert "chunk switches (crossfade, horizon 20 actions): jump p50" in human.stdout


def test_a_horizon_longer_than_the_chunk_is_a_setup_error(tmp_path: Path) -> None:
    path = session(tmp_path, {"horizon": 60})
    proc = run_cli(["connect", str(path), "--json"])
    result = json_result(proc)
    assert proc.returncode == 3 and not result["ok"]
    assert any("execution.horizon" in e and "longer than the target's chunks (50" in e for e in result["errors"])


def test_a_prefix_export_gets_the_plan_in_a_real_session(tmp_path: Path) -> None:
    """builtin:demo_flow through ``reflex connect``: the runner fills its prefix inputs and the
    guided chunks continue the plan; with execution.prefix off they are sampled unguided."""
    gaps = {}
    for prefix in (True, False):
        data = base_session(mode="apply_actions", control_rate_hz=50, max_steps=150, cameras={},
                            target={"kind": "local", "export": "builtin:demo_flow"},
                            execution={"horizon": 25, "prefix": prefix})
        proc = run_cli(["connect", str(write_session(tmp_path, data, f"s{prefix}.yaml")), "--json"])
        result = json_result(proc)
        assert result["ok"], result["errors"]
        assert result["seams"]["prefix"] is prefix and result["seams"]["switches"] >= 3
        gaps[prefix] = result["seams"]["gap"]["p50"]
    assert gaps[True] < 0.3 * gaps[False]


def test_horizon_in_seconds_becomes_whole_actions_and_both_at_once_is_a_config_error(tmp_path: Path) -> None:
    path = session(tmp_path, {"horizon_s": 0.4, "blend": "ensemble"})
    result = json_result(run_cli(["connect", str(path), "--json", "--no-record"]))
    assert result["ok"], result["errors"]
    assert result["seams"]["horizonActions"] == 20 and result["seams"]["blend"] == "ensemble"
    assert result["seams"]["ensembleK"] == 0.01

    (tmp_path / "both").mkdir()
    both = session(tmp_path / "both", {"horizon": 10, "horizon_s": 0.2})
    proc = run_cli(["connect", str(both), "--json"])
    assert proc.returncode == 2
    assert "execution.horizon (actions) or execution.horizon_s (seconds), not both" in proc.stdout + proc.stderr

"""The real control loop on the sim robot with the demo policy: modes, invariants, faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import base_session, write_session
from reflex_test_plugins import read_journal

from reflex.hardware.yam_layout import yam_bimanual_layout
from reflex.runtime.session import run_session_file


def journal_session(
    tmp_path: Path,
    mode: str = "dry_run",
    hw_config: dict[str, Any] | None = None,
    **overrides: Any,
) -> tuple[Path, Path]:
    """A session on the journaling sim robot (its sim camera feeds the demo policy)."""
    journal = tmp_path / "journal.jsonl"
    hardware = {"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal), **(hw_config or {})}}
    session = base_session(mode=mode, hardware=hardware, **overrides)
    return write_session(tmp_path, session), journal


def scripted_target(**kwargs: Any) -> dict[str, Any]:
    return {"kind": "reflex_test_plugins:ScriptedTarget", "config": kwargs}


def calls(journal: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in read_journal(journal) if e["call"] == name]


def test_dry_run_never_enables_or_applies(tmp_path: Path) -> None:
    path, journal = journal_session(tmp_path, max_steps=40)
    result = run_session_file(path)
    assert result.ok, result.errors
    assert result.steps == 40 and result.applied_steps == 0 and result.exit_code == 0
    names = [e["call"] for e in read_journal(journal)]
    assert "enable" not in names and "apply" not in names and "safe_stop" not in names
    assert names[:2] == ["init", "connect"] and names[-1] == "close"


def test_apply_actions_commands_are_finite_in_limits_and_within_delta(tmp_path: Path) -> None:
    delta = 0.002  # below the demo policy's 0.005 rad per step: the guard has to clamp
    path, journal = journal_session(tmp_path, mode="apply_actions", max_steps=60, safety={"max_delta": delta})
    result = run_session_file(path)
    assert result.ok, result.errors
    assert result.applied_steps == result.steps == 60
    layout = yam_bimanual_layout()
    applied = calls(journal, "apply")
    assert len(applied) == 60
    for entry in applied:
        action = np.array(entry["action"])
        measured = np.array(entry["measured"])
        assert np.all(np.isfinite(action))
        assert np.all(action >= layout.lower) and np.all(action <= layout.upper)
        assert np.all(np.abs(action - measured) <= delta + 1e-9)
    # the demo policy wants to move further than delta: the guard had to clamp
    assert result.guard["clampDeltaSteps"] > 0


def test_motors_enable_only_after_the_first_chunk(tmp_path: Path) -> None:
    marker = tmp_path / "connect.marker"
    path, journal = journal_session(
        tmp_path, mode="apply_actions", max_steps=5, target=scripted_target(connect_marker=str(marker))
    )
    result = run_session_file(path)
    assert result.ok, result.errors
    names = [e["call"] for e in read_journal(journal)]
    assert names.index("enable") > names.index("connect")
    assert marker.exists()
    assert result.chunks["firstChunkMs"] > 0
    assert names.index("enable") < names.index("apply")


@pytest.mark.parametrize(
    "stage,hw_config,target",
    [
        ("observe", {"faults": {"observe_at_step": 15}}, None),
        ("apply", {"faults": {"apply_at_step": 10}}, None),
        ("infer", {}, {"fail_at_call": 3}),
        ("infer", {}, {"nan_at_call": 2}),
        ("infer", {}, {"wrong_width_at_call": 2}),
    ],
    ids=["observe", "apply", "infer-raises", "infer-nan", "infer-wrong-width"],
)
def test_fault_gives_exactly_one_safe_stop(
    tmp_path: Path, stage: str, hw_config: dict[str, Any], target: dict[str, Any] | None
) -> None:
    extra: dict[str, Any] = {"max_steps": 300}
    if target is not None:
        extra["target"] = scripted_target(**target)
    path, journal = journal_session(tmp_path, mode="apply_actions", hw_config=hw_config, **extra)
    result = run_session_file(path)
    assert not result.ok and result.exit_code == 1
    assert result.safe_stops == 1
    assert len(calls(journal, "safe_stop")) == 1
    assert result.stop_reason == f"incident:{stage}"
    assert any(e.startswith(f"{stage}:") for e in result.errors), result.errors
    assert result.steps < 300
    # nothing is applied after the safe stop
    events = [e["call"] for e in read_journal(journal)]
    assert "apply" not in events[events.index("safe_stop"):]


def test_failed_safe_stop_is_reported_with_its_own_exit_code(tmp_path: Path) -> None:
    path, _ = journal_session(
        tmp_path, mode="apply_actions", hw_config={"faults": {"apply_at_step": 3, "safe_stop_fails": True}}
    )
    result = run_session_file(path)
    assert result.safe_stops == 1 and result.safe_stop_failures
    assert result.exit_code == 4 and not result.ok


def test_stale_state_holds_then_safe_stops(tmp_path: Path) -> None:
    path, journal = journal_session(
        tmp_path, mode="apply_actions", hw_config={"stale_after": 10}, max_steps=200,
        safety={"max_hold_steps": 5},
    )
    result = run_session_file(path)
    assert result.safe_stops == 1 and not result.ok
    assert result.stop_reason == "incident:stale"
    # no command was computed from stale data: every apply happened before the state went stale
    applies = calls(journal, "apply")
    assert applies and max(e["step"] for e in applies) < 10
    assert result.stale["staleSteps"] == 6


def test_stale_state_can_safe_stop_at_once(tmp_path: Path) -> None:
    path, _ = journal_session(
        tmp_path, mode="apply_actions", hw_config={"stale_after": 10}, max_steps=200,
        safety={"on_stale": "safe_stop"},
    )
    result = run_session_file(path)
    assert result.safe_stops == 1 and result.stale["staleSteps"] == 1


def test_target_connect_failure_starts_no_hardware(tmp_path: Path) -> None:
    path, journal = journal_session(tmp_path, target=scripted_target(connect_error="server unreachable"))
    result = run_session_file(path)
    assert result.exit_code == 3 and not result.ok
    assert "server unreachable" in result.errors[0]
    assert read_journal(journal) == []


def test_slow_inference_never_blocks_the_loop(tmp_path: Path) -> None:
    # inference takes 3 control periods: the loop keeps its rate and skips actions that went stale
    path, _ = journal_session(
        tmp_path, mode="apply_actions", max_steps=80, control_rate_hz=100,
        target=scripted_target(infer_delay_s=0.03),
    )
    result = run_session_file(path)
    assert result.ok, result.errors
    assert result.steps == 80
    assert result.chunks["skippedActions"] >= result.chunks["received"]  # >= 1 past action per chunk
    assert result.chunks["starvedSteps"] == 0


def test_jsonl_recording_matches_the_session(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    path, journal = journal_session(tmp_path, mode="apply_actions", max_steps=30, record={"formats": ["jsonl"]})
    result = run_session_file(path, record_dir=str(rec))
    assert result.ok
    lines = [json.loads(x) for x in (rec / "jsonl" / "steps.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["config_hash"]
    assert lines[-1]["type"] == "end"
    steps = [x for x in lines if x["type"] == "step"]
    assert [s["step"] for s in steps] == list(range(30))
    applied = calls(journal, "apply")
    for s, a in zip(steps, applied, strict=True):
        assert s["applied"] is True
        assert s["action"] == pytest.approx(a["action"], abs=0)
        # connectors that declare it get the chunk id and step context with every command
        assert a["chunk_id"] == s["chunk_id"] and a["t_target"] == s["t_tick"]
        assert a["read_step"] in (s["step"], 0)  # step 0 reuses the first chunk's observation
    chunks = {x["chunk_id"] for x in lines if x["type"] == "chunk"}
    assert {s["chunk_id"] for s in steps} <= chunks
    image = steps[0]["frames"]["top"]["path"]
    assert (rec / "jsonl" / image).is_file()
    assert result.recording is not None and result.recording["dropped"] == {"jsonl": 0}


def test_dry_run_recording_marks_nothing_applied(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    path, _ = journal_session(tmp_path, max_steps=15, record={"formats": ["jsonl"]})
    result = run_session_file(path, record_dir=str(rec))
    assert result.ok
    steps = [json.loads(x) for x in (rec / "jsonl" / "steps.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["type"] == "step"]
    assert len(steps) == 15
    assert all(s["applied"] is False and s["action"] is not None for s in steps)


def test_enable_failure_is_a_setup_error_followed_by_one_safe_stop(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    hardware = {"kind": "reflex_test_plugins:FailingEnableSim", "config": {"journal": str(journal)}}
    result = run_session_file(write_session(tmp_path, base_session(mode="apply_actions", hardware=hardware)))
    assert result.exit_code == 3 and not result.ok
    assert "hardware.enable" in result.errors[0] and result.safe_stops == 1
    assert [e["call"] for e in read_journal(journal)][-2:] == ["safe_stop", "close"]


def test_hardware_that_cannot_be_built_is_a_setup_error(tmp_path: Path) -> None:
    hardware = {"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(tmp_path / "j"), "bogus": 1}}
    result = run_session_file(write_session(tmp_path, base_session(hardware=hardware)))
    assert result.exit_code == 3 and result.errors[0].startswith("hardware:") and result.safe_stops == 0

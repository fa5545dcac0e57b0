"""Malformed session files: each is rejected with exit 2, names its YAML path, touches nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import base_session, write_session
from reflex_test_plugins import read_journal
from typer.testing import CliRunner

from reflex.cli.app import app


def journal_hw(journal: Path, **config: Any) -> dict[str, Any]:
    return {"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal), **config}}


# (name, mutation of a valid session, expected YAML path, expected words in the message)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("bad mode", {"mode": "move_fast"}, "mode", "dry_run"),
    ("rate not a number", {"control_rate_hz": "fast"}, "control_rate_hz", "number"),
    ("negative rate", {"control_rate_hz": -5}, "control_rate_hz", "greater than 0"),
    ("negative max_steps", {"max_steps": -1}, "max_steps", "greater than or equal"),
    ("unknown top-level key", {"contrl_rate_hz": 30}, "contrl_rate_hz", "unknown field"),
    ("unknown target kind", {"target": {"kind": "grpc", "url": "x"}}, "target.kind", "unknown kind 'grpc'"),
    ("target missing export", {"target": {"kind": "local"}}, "target.export", "required"),
    ("target unknown field", {"target": {"kind": "local", "export": "builtin:demo", "gpu": 1}},
     "target.gpu", "unknown field"),
    ("missing target", {"target": None}, "target", ""),
    ("camera missing kind", {"cameras": {"top": {"name": "top"}}}, "cameras.top", "kind"),
    ("camera unknown kind", {"cameras": {"top": {"kind": "kinect"}}}, "cameras.top.kind", "unknown kind"),
    ("camera bad size", {"cameras": {"top": {"kind": "sim", "width": 0}}}, "cameras.top.width", "greater"),
    ("unknown record format", {"record": {"formats": ["avi"]}}, "record.formats", "unknown recording format"),
    ("safety delta zero", {"safety": {"max_delta": 0}}, "safety.max_delta", "> 0"),
    ("bad on_stale", {"safety": {"on_stale": "ignore"}}, "safety.on_stale", "hold"),
    ("plugin not importable", {"target": {"kind": "no_such_module:Policy"}}, "target.kind",
     "cannot import plugin module"),
    ("plugin kind malformed", {"cameras": {"top": {"kind": "a.b:"}}}, "cameras.top.kind",
     "expected 'package.module:Class'"),
    ("unset env var", {"task": "${REFLEX_TEST_SURELY_UNSET_VAR}"}, "task", "REFLEX_TEST_SURELY_UNSET_VAR"),
]

HARDWARE_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("sim config unknown field", {"kind": "sim", "config": {"speed": 3}}, "hardware.config.speed",
     "unknown field"),
    ("sim initial pose too short", {"kind": "sim", "config": {"initial_pose": [0, 1]}},
     "hardware.config.initial_pose", "has 14 joints"),
    ("unknown hardware kind", {"kind": "yam_trimanual", "config": {}}, "hardware.kind", "unknown kind"),
]


def run_connect(path: Path) -> Any:
    return CliRunner().invoke(app, ["connect", "--config", str(path), "--json"])


@pytest.mark.parametrize("name,mutation,path,words", CASES, ids=[c[0] for c in CASES])
def test_malformed_config_exits_2_with_path(
    tmp_path: Path, name: str, mutation: dict[str, Any], path: str, words: str
) -> None:
    journal = tmp_path / "journal.jsonl"
    session = base_session(hardware=journal_hw(journal), cameras={})
    for key, value in mutation.items():
        if value is None:
            session.pop(key)
        else:
            session[key] = value
    result = run_connect(write_session(tmp_path, session))
    assert result.exit_code == 2, result.output
    assert path in result.output
    assert words in result.output
    assert read_journal(journal) == [], "hardware was built or touched by a bad config"


@pytest.mark.parametrize("name,hardware,path,words", HARDWARE_CASES, ids=[c[0] for c in HARDWARE_CASES])
def test_malformed_hardware_block(tmp_path: Path, name: str, hardware: dict[str, Any], path: str, words: str) -> None:
    journal = tmp_path / "journal.jsonl"
    session = base_session(hardware=hardware or journal_hw(journal))
    result = run_connect(write_session(tmp_path, session))
    assert result.exit_code == 2, result.output
    assert path in result.output and words in result.output
    assert read_journal(journal) == []


def test_per_joint_delta_must_match_the_joint_count(tmp_path: Path) -> None:
    result = run_connect(write_session(tmp_path, base_session(safety={"max_delta": [0.1, 0.1]})))
    assert result.exit_code == 2
    assert "safety.max_delta has 2 entries, hardware has 14 joints" in result.output


def test_line_numbers_are_reported(tmp_path: Path) -> None:
    text = (
        "mode: dry_run\n"
        "target:\n"
        "  kind: local\n"
        "  export: builtin:demo\n"
        "hardware:\n"
        "  kind: sim\n"
        "  config:\n"
        "    time_constant_s: -1\n"
    )
    result = run_connect(write_session(tmp_path, text))
    assert result.exit_code == 2
    assert "hardware.config.time_constant_s (line 8)" in result.output


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    session = base_session(mode="fly", control_rate_hz=0, bogus=1)
    result = run_connect(write_session(tmp_path, session))
    assert result.exit_code == 2
    for path in ("mode", "control_rate_hz", "bogus"):
        assert path in result.output


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    result = run_connect(write_session(tmp_path, "mode: [dry_run\n"))
    assert result.exit_code == 2 and "invalid YAML" in result.output
    result = run_connect(tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "not found" in result.output


def test_unknown_format_flag_is_config_error(tmp_path: Path) -> None:
    path = write_session(tmp_path, base_session())
    result = CliRunner().invoke(app, ["connect", "--config", str(path), "--format", "jsonl,avi"])
    assert result.exit_code == 2 and "--format" in result.output and "avi" in result.output


def test_env_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reflex.config.loader import load_session_config

    monkeypatch.setenv("REFLEX_TEST_TASK", "pick up the cube")
    session = base_session(task="${REFLEX_TEST_TASK}", record={"dir": "${REFLEX_TEST_NOPE:-/tmp/x}"})
    config = load_session_config(write_session(tmp_path, session))
    assert config.task == "pick up the cube"
    assert config.record.dir == "/tmp/x"

"""Scenario suite, configs: files written by an attacker or a careless user.

Every scenario runs ``reflex connect --json`` in-process (the config layer needs no process
boundary) with a journalling robot and a ``--record`` directory, and asserts: exit code 2, the
message names where and what, the robot was never built or touched, and no recording was begun.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import base_session
from reflex_test_plugins import read_journal
from typer.testing import CliRunner

from reflex.cli.app import app

HEAD = "target: {kind: local, export: builtin:demo}\ncontrol_rate_hz: 100\nmax_steps: 5\n"


def hardware_block(journal: Path, **config: Any) -> str:
    body = {"journal": str(journal), **config}
    return "hardware:\n  kind: reflex_test_plugins:JournalSim\n  config: " + json.dumps(body) + "\n"


def billion_laughs(levels: int = 9) -> str:
    text = 'lol0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        refs = ",".join([f"*l{i - 1}"] * 9)
        text += f"lol{i}: &l{i} [{refs}]\n"
    return text


def plugin(tmp_path: Path, source: str) -> str:
    """A plugin module on sys.path with a fresh name; returns its ``module:Class`` path."""
    name = f"scenario_plugin_{uuid.uuid4().hex[:10]}"
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / f"{name}.py").write_text(source)
    return f"{name}:Robot"


def plugin_block(tmp_path: Path, where: str, source: str) -> str:
    kind = plugin(tmp_path, source)
    if where == "camera":
        return f"cameras: {{top: {{kind: '{kind}'}}}}\n"
    return f"hardware: {{kind: '{kind}'}}\n"


# Each scenario: (id, build(tmp, journal) -> YAML text, words that must appear in the message).
Builder = Callable[[Path, Path], str]
SCENARIOS: list[tuple[str, Builder, list[str]]] = [
    ("duplicate top-level mode",
     lambda t, j: "mode: dry_run\n" + HEAD + hardware_block(j) + "mode: apply_actions\n",
     ["duplicate key", "line 1", "line 8", "mode"]),
    ("duplicate nested max_delta",
     lambda t, j: HEAD + hardware_block(j) + "safety:\n  max_delta: 0.01\n  max_delta: 5.0\n",
     ["duplicate key", "safety.max_delta", "line 8", "line 9"]),
    ("duplicate key in flow mapping",
     lambda t, j: HEAD + hardware_block(j) + "safety: {on_stale: hold, on_stale: safe_stop}\n",
     ["duplicate key", "safety.on_stale"]),
    ("duplicate key deep in a camera",
     lambda t, j: HEAD + hardware_block(j) + "cameras:\n  top:\n    kind: sim\n    width: 64\n    width: 9000\n",
     ["duplicate key", "cameras.top.width"]),
    ("duplicate block",
     lambda t, j: HEAD + hardware_block(j) + "safety: {max_delta: 0.01}\nsafety: {max_delta: 0.4}\n",
     ["duplicate key", "safety"]),
    ("billion laughs",
     lambda t, j: HEAD + hardware_block(j) + billion_laughs(),
     ["expands to more than", "aliases"]),
    ("alias fan-out inside task list",
     lambda t, j: HEAD + hardware_block(j) + billion_laughs(7) + "task: *l6\n",
     ["expands to more than"]),
    ("deep nesting 100000",
     lambda t, j: HEAD + hardware_block(j) + "task: " + "[" * 100_000 + "\n",
     ["nesting deeper than"]),
    ("deep nesting of mappings",
     lambda t, j: HEAD + hardware_block(j) + "task:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)),
     ["nesting deeper than"]),
    ("file over the size cap",
     lambda t, j: HEAD + hardware_block(j) + "# " + "x" * (2 * 1024 * 1024) + "\n",
     ["larger than"]),
    ("nan max_delta", lambda t, j: HEAD + hardware_block(j) + "safety: {max_delta: .nan}\n",
     ["safety.max_delta", "finite"]),
    ("inf max_delta", lambda t, j: HEAD + hardware_block(j) + "safety: {max_delta: .inf}\n",
     ["safety.max_delta", "finite"]),
    ("nan in per-joint max_delta",
     lambda t, j: HEAD + hardware_block(j) + "safety: {max_delta: [" + ", ".join(["0.1"] * 13 + [".nan"]) + "]}\n",
     ["safety.max_delta", "finite"]),
    ("nan initial pose",
     lambda t, j: HEAD + "hardware: {kind: sim, config: {initial_pose: [" + ", ".join(["0"] * 13 + [".nan"])
     + "]}}\n", ["hardware.config.initial_pose", "finite"]),
    ("inf state age", lambda t, j: HEAD + hardware_block(j) + "safety: {max_state_age_ms: .inf}\n",
     ["safety.max_state_age_ms", "finite"]),
    ("-inf camera age", lambda t, j: HEAD + hardware_block(j) + "cameras: {top: {kind: sim, max_age_ms: -.inf}}\n",
     ["cameras.top.max_age_ms"]),
    ("max_delta 1e6", lambda t, j: HEAD + hardware_block(j) + "safety: {max_delta: 1.0e6}\n",
     ["safety.max_delta", "sensible range", "expert_override"]),
    ("per-joint max_delta one huge",
     lambda t, j: HEAD + hardware_block(j) + "safety: {max_delta: [" + ", ".join(["0.1"] * 13 + ["9"]) + "]}\n",
     ["safety.max_delta[13]", "sensible range"]),
    ("infer timeout 1e9", lambda t, j: HEAD + hardware_block(j) + "safety: {infer_timeout_s: 1.0e9}\n",
     ["safety.infer_timeout_s", "sensible range"]),
    ("first chunk timeout 1e9", lambda t, j: HEAD + hardware_block(j) + "safety: {first_chunk_timeout_s: 1.0e9}\n",
     ["safety.first_chunk_timeout_s", "sensible range"]),
    ("hold steps 1e9", lambda t, j: HEAD + hardware_block(j) + "safety: {max_hold_steps: 1000000000}\n",
     ["safety.max_hold_steps", "sensible range"]),
    ("camera age 1e6", lambda t, j: HEAD + hardware_block(j) + "cameras: {top: {kind: sim, max_age_ms: 1.0e6}}\n",
     ["cameras.top.max_age_ms", "sensible range"]),
    ("camera 100k wide", lambda t, j: HEAD + hardware_block(j) + "cameras: {top: {kind: sim, width: 100000}}\n",
     ["cameras.top.width", "sensible range"]),
    ("queue budget 1e9 MiB", lambda t, j: HEAD + hardware_block(j) + "record: {queue_budget_mb: 1.0e9}\n",
     ["record.queue_budget_mb", "less than or equal"]),
    ("sim velocity 1e6", lambda t, j: HEAD + "hardware: {kind: sim, config: {max_velocity: 1.0e6}}\n",
     ["hardware.config.max_velocity", "sensible range"]),
    ("override without reason",
     lambda t, j: HEAD + hardware_block(j) + "safety: {max_delta: 2}\nexpert_override: {allow: [safety.max_delta]}\n",
     ["expert_override.reason", "required"]),
    ("override naming the wrong field",
     lambda t, j: HEAD + hardware_block(j)
     + "safety: {max_delta: 2}\nexpert_override: {reason: a bench rig test, allow: [safety.max_deltas]}\n",
     ["safety.max_delta", "sensible range", "expert_override.allow[0]", "not a field"]),
    ("unknown key 1 MB long",
     lambda t, j: HEAD + hardware_block(j) + "safety:\n  ? " + "k" * 1_000_000 + "\n  : 1\n",
     ["safety.kkk", "characters", "unknown field"]),
    ("unknown value 1 MB long",
     lambda t, j: HEAD + hardware_block(j) + "mode: " + "m" * 1_000_000 + "\n",
     ["mode", "..."]),
    ("plugin with a syntax error",
     lambda t, j: HEAD + plugin_block(t, "hardware", "class Robot(:\n    pass\n"),
     ["hardware.kind", "cannot import plugin module", ".py:1", "SyntaxError"]),
    ("plugin raising on import",
     lambda t, j: HEAD + plugin_block(t, "hardware", 'x = 1\nraise RuntimeError("no robot here\\nsecond")\n'),
     ["hardware.kind", ".py:2", "RuntimeError: no robot here"]),
    ("plugin importing a missing package",
     lambda t, j: HEAD + plugin_block(t, "hardware", "import surely_missing_pkg_xyz\n"),
     ["hardware.kind", ".py:1", "surely_missing_pkg_xyz"]),
    ("plugin without the class",
     lambda t, j: HEAD + plugin_block(t, "hardware", "X = 1\n"),
     ["hardware.kind", "has no attribute 'Robot'"]),
    ("plugin exiting on import",
     lambda t, j: HEAD + hardware_block(j) + plugin_block(t, "camera", "import sys\nsys.exit(3)\n"),
     ["cameras.top.kind", "SystemExit"]),
]


@pytest.mark.parametrize("name,build,words", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_config_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, build: Builder, words: list[str]
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    journal = tmp_path / "journal.jsonl"
    config = tmp_path / "session.yaml"
    config.write_text(build(tmp_path, journal))
    rec = tmp_path / "rec"
    result = CliRunner().invoke(app, ["connect", "--config", str(config), "--json", "--record", str(rec)])
    assert result.exit_code == 2, result.output[-2000:]
    payload = json.loads(next(ln for ln in result.stdout.splitlines() if ln.startswith("{")))
    assert payload["exitCode"] == 2 and payload["ok"] is False
    message = "\n".join(payload["errors"])
    for word in words:
        assert word in message, f"{word!r} not in {message[:1500]!r}"
    assert len(result.output) < 20_000, "a message echoed the input back whole"
    assert read_journal(journal) == [], "the robot was built or touched by a bad config"
    assert not rec.exists(), "a recording was begun for a config that never ran"


def test_expert_override_is_stamped_into_result_and_recording(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    session = base_session(
        hardware={"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal)}},
        safety={"max_delta": 0.8},
        expert_override={"reason": "bench rig with a slow loop", "allow": ["safety.max_delta"]},
        record={"formats": ["jsonl"]},
        max_steps=3,
    )
    config = tmp_path / "session.yaml"
    config.write_text(yaml.safe_dump(session))
    rec = tmp_path / "rec"
    result = CliRunner().invoke(app, ["connect", "--config", str(config), "--json", "--record", str(rec)])
    assert result.exit_code == 0, result.output
    payload = json.loads(next(ln for ln in result.stdout.splitlines() if ln.startswith("{")))
    stamp = payload["expertOverride"]
    assert stamp["reason"] == "bench rig with a slow loop"
    assert stamp["outsideRange"] == [{"field": "safety.max_delta", "value": 0.8, "range": "at most 0.5"}]
    manifest = json.loads((rec / "recording.json").read_text())
    assert manifest["expert_override"] == stamp and manifest["status"] == "complete"


def test_in_range_config_has_no_override_stamp(tmp_path: Path) -> None:
    config = tmp_path / "session.yaml"
    config.write_text(yaml.safe_dump(base_session(max_steps=2)))
    result = CliRunner().invoke(app, ["connect", "--config", str(config), "--json", "--no-record"])
    assert result.exit_code == 0, result.output
    payload = json.loads(next(ln for ln in result.stdout.splitlines() if ln.startswith("{")))
    assert payload["expertOverride"] is None


def test_config_path_is_a_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["connect", "--config", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert "is a directory" in result.output and "not found" not in result.output


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    """YAML merge (``<<``) lets a block override a merged key: that is not a repeated key."""
    from reflex.config.loader import load_session_config

    text = (HEAD + "hardware: {kind: sim}\n"
            "base: &base {max_delta: 0.1, on_stale: hold}\n"
            "safety:\n  <<: *base\n  max_delta: 0.2\n").replace("base: &base", "x-base: &base")
    config = tmp_path / "session.yaml"
    config.write_text(text)
    with pytest.raises(Exception) as err:  # x-base is an unknown top-level key; the merge itself is fine
        load_session_config(config)
    assert "duplicate" not in str(err.value) and "x-base" in str(err.value)


@pytest.mark.parametrize("text", [
    "mode: dry_run\n" + HEAD + "hardware: {kind: sim}\nmode: apply_actions\n",
    HEAD + "hardware: {kind: sim}\nsafety: {max_delta: .nan}\n",
    HEAD + "hardware: {kind: sim}\n" + billion_laughs(),
], ids=["duplicate", "nan", "alias bomb"])
def test_check_refuses_what_connect_refuses(tmp_path: Path, text: str) -> None:
    """``--check`` used to accept a file with a repeated key; it reads through the same loader."""
    config = tmp_path / "session.yaml"
    config.write_text(text)
    result = CliRunner().invoke(app, ["connect", "--config", str(config), "--check", "--json"])
    assert result.exit_code == 2, result.output[-1500:]
    payload = json.loads(next(ln for ln in result.stdout.splitlines() if ln.startswith("{")))
    assert payload["exitCode"] == 2

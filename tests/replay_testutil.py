"""Helpers for the replay tests: the committed sample, export variants, fresh recordings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conftest import REPO, base_session, write_session
from typer.testing import CliRunner

from reflex.targets.export_manifest import resolve_export_dir

SAMPLE = REPO / "recordings" / "sim_demo"
REPLAY_SESSION = REPO / "recordings" / "replay_session.yaml"
FORMATS = ("jsonl", "mcap", "lerobot", "rerun")


def variant_export(tmp_path: Path, name: str, edit: Any) -> Path:
    """A copy of the demo export whose reflex_config.json is changed by ``edit(manifest)``.

    model.onnx is byte-identical, so the model hash is the recorded one: what changed is the
    export's normalisation or inputs, exactly the kind of change replay exists to catch."""
    out = tmp_path / name
    shutil.copytree(resolve_export_dir("builtin:demo", REPO), out)
    manifest = json.loads((out / "reflex_config.json").read_text())
    edit(manifest)
    (out / "reflex_config.json").write_text(json.dumps(manifest, indent=2))
    return out


def record(
    tmp_path: Path, name: str, formats: list[str], export: str = "builtin:demo", steps: int = 150,
    rate: int = 100, **overrides: Any,
) -> Path:
    """A fresh recording of the sim robot driven by ``export`` (in-process runner)."""
    from reflex.runtime.session import run_session_file

    session = base_session(
        mode="apply_actions", control_rate_hz=rate, max_steps=steps, task="wave both arms",
        target={"kind": "local", "export": export},
        record={"formats": formats}, **overrides,
    )
    path = write_session(tmp_path, session, f"{name}.yaml")
    out = tmp_path / name
    result = run_session_file(path, record_dir=str(out))
    assert result.ok, result.errors
    return out


def replay_cli(*args: str) -> tuple[int, dict[str, Any], str]:
    """``reflex replay ... --json`` in-process; returns (exit code, JSON, stderr+stdout)."""
    from reflex.cli.app import app

    result = CliRunner().invoke(app, ["replay", *args, "--json"])
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    payload = json.loads(lines[-1]) if lines else {}
    return result.exit_code, payload, result.output

"""Shared helpers: write session files, run sessions in-process and as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def base_session(**overrides: Any) -> dict[str, Any]:
    """A valid dry_run session on the sim robot with the demo policy."""
    session: dict[str, Any] = {
        "mode": "dry_run",
        "control_rate_hz": 100,
        "max_steps": 20,
        "target": {"kind": "local", "export": "builtin:demo"},
        "hardware": {"kind": "sim"},
        "cameras": {"top": {"kind": "sim"}},
        "record": {"enabled": False},
    }
    session.update(overrides)
    return session


def write_session(tmp_path: Path, data: dict[str, Any] | str, name: str = "session.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")])
    env.pop("REFLEX_NO_RECORD", None)
    env.update(extra)
    return env


def run_cli(args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``reflex ...`` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "reflex", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(**env),
        cwd=REPO,
    )


def json_result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON on stdout; stderr:\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.fixture
def recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep default recordings out of the home directory."""
    root = tmp_path / "recordings"
    monkeypatch.setenv("REFLEX_RECORDINGS_DIR", str(root))
    return root

"""The commands in docs/operating.md and docs/editor.md run as written."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env

DOCS = ["docs/operating.md", "docs/editor.md"]


def commands() -> list[tuple[str, str]]:
    """``reflex ...`` lines of the plain fenced blocks (not the yaml/json examples)."""
    out = []
    for doc in DOCS:
        fence: str | None = None
        for line in (REPO / doc).read_text().splitlines():
            if line.startswith("```"):
                fence = None if fence is not None else line[3:].strip()
            elif fence == "" and line.startswith("reflex "):
                out.append((doc, line.strip()))
    return out


@pytest.mark.parametrize(("doc", "command"), commands(), ids=[c for _, c in commands()])
def test_documented_command_runs(doc: str, command: str, tmp_path: Path) -> None:
    args = shlex.split(command)[1:]
    if "--view" in args:
        args[args.index("--view") + 1:args.index("--view") + 1] = ["serve:0"]  # headless here: serve
    writes = "--out" in args
    cwd = tmp_path if writes else REPO
    if writes:
        args = [a if not a.startswith("configs/") else str(REPO / a) for a in args]
    env = subprocess_env(PYTHONPATH=str(REPO), REFLEX_RECORDINGS_DIR=str(tmp_path / "recordings"))
    proc = subprocess.run([sys.executable, "-m", "reflex", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)
    assert proc.returncode in ((0, 1) if args[0] == "doctor" else (0,)), (doc, command, proc.stdout, proc.stderr)

"""``reflex serve`` start-up as a real subprocess: a bad EXPORT_DIR exits 2 before binding, a
model that does not load exits 3 at once, a loaded model prints one ready line."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env

from reflex.targets.export_manifest import resolve_export_dir

pytestmark = pytest.mark.timeout(120)


def serve(export: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reflex", "serve", export, "--port", "0"],
        capture_output=True, text=True, timeout=90, env=subprocess_env(), cwd=REPO,
    )


def test_a_missing_export_exits_2_without_listening(tmp_path: Path) -> None:
    proc = serve(str(tmp_path / "missing-export"))
    assert proc.returncode == 2, proc.stderr
    assert "listening" not in proc.stdout and "missing-export' does not exist" in proc.stderr


def test_a_directory_that_is_not_an_export_exits_2(tmp_path: Path) -> None:
    assert serve(str(tmp_path)).returncode == 2
    (tmp_path / "reflex_config.json").write_text(json.dumps({"name": "x"}))
    proc = serve(str(tmp_path))
    assert proc.returncode == 2 and "not a valid export manifest" in proc.stderr and "state_dim" in proc.stderr


def test_a_model_that_does_not_load_exits_3(tmp_path: Path) -> None:
    export = tmp_path / "broken"
    shutil.copytree(resolve_export_dir("builtin:demo", REPO), export)
    (export / "model.onnx").write_bytes(b"not an onnx model")
    proc = serve(str(export))
    assert proc.returncode == 3, proc.stderr
    assert "does not load" in proc.stderr and "ready" not in proc.stdout


def test_a_loaded_model_prints_one_ready_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "serve", "builtin:demo", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(), cwd=REPO,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60  # a bound on waiting, not a measurement
    try:
        while time.monotonic() < deadline and not any("ready" in ln for ln in lines):
            if select.select([proc.stdout], [], [], 0.5)[0]:
                lines.append(proc.stdout.readline())
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    lines += out.splitlines()
    port = int(lines[0].strip().rsplit(":", 1)[1])
    (ready,) = [ln for ln in lines if "ready" in ln]
    assert f"http://127.0.0.1:{port}" in ready and "model reflex-demo-spiral" in ready
    for endpoint in ("POST /act", "GET /health", "WebSocket /", "POST /webrtc/offer"):
        assert endpoint in ready
    assert proc.returncode == 0

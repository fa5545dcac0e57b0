"""Whole sessions through ``reflex connect`` against ``reflex serve``, both real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("aiohttp")
pytest.importorskip("aiortc")

from reflex_test_plugins import read_journal
from serve_testutil import REPO, ServeProcess, subprocess_env

pytestmark = pytest.mark.timeout(120)
KEY = "session-key"
KINDS = ["http", "websocket", "webrtc"]


def target_block(kind: str, port: int, **fields: Any) -> dict[str, Any]:
    scheme = "ws" if kind == "websocket" else "http"
    block = {"kind": kind, "url": f"{scheme}://127.0.0.1:{port}", "connect_timeout_s": 5.0, "timeout_s": 1.0}
    block.update(fields)
    return block


def write_config(tmp_path: Path, target: dict[str, Any], **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "mode": "dry_run",
        "control_rate_hz": 50,
        "max_steps": 60,
        "task": "wave",
        "target": target,
        "hardware": {"kind": "sim"},
        "cameras": {"top": {"kind": "sim", "width": 128, "height": 96}},
        "record": {"formats": ["jsonl"], "dir": str(tmp_path / "rec")},
    }
    data.update(overrides)
    path = tmp_path / "session.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def connect_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json"]


def result_of(stdout: str, stderr: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON result; stderr:\n{stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_connect(config: Path, key: str | None, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
    env = subprocess_env(**({"REFLEX_API_KEY": key} if key else {}))
    proc = subprocess.run(connect_cmd(config), capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    return proc.returncode, result_of(proc.stdout, proc.stderr), proc.stderr


def recorded(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "rec" / "jsonl" / "steps.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def served() -> Iterator[ServeProcess]:
    proc = ServeProcess("builtin:demo", api_key=KEY)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_session_over_each_transport_is_ok(served: ServeProcess, tmp_path: Path, kind: str) -> None:
    code, result, stderr = run_connect(write_config(tmp_path, target_block(kind, served.port)), KEY)
    assert code == 0 and result["ok"] is True, (result, stderr)
    assert result["steps"] == 60 and result["safeStops"] == 0 and result["errors"] == []
    assert result["target"]["kind"] == kind and result["target"]["model"] == "reflex-demo-spiral"
    chunks = [r for r in recorded(tmp_path) if r["type"] == "chunk"]
    assert chunks, "no chunk recorded"
    for chunk in chunks:
        timing = chunk["timing_ms"]
        assert timing["server_ms"] > 0 and timing["network_ms"] >= 0  # network vs server, per chunk
    ids = [chunk["request_id"] for chunk in chunks]  # the server's id of each answer, for its logs
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids), ids


def test_wrong_key_stops_before_hardware_starts(served: ServeProcess, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    config = write_config(
        tmp_path,
        target_block("webrtc", served.port),
        hardware={"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal)}},
        cameras={},
    )
    code, result, stderr = run_connect(config, "not-the-key")
    assert code == 3, (result, stderr)
    assert result["ok"] is False and result["steps"] == 0
    assert any("API key rejected" in e for e in result["errors"]), result
    assert [c["call"] for c in read_journal(journal) if c["call"] in ("connect", "enable", "apply")] == []


def test_unreachable_server_is_a_setup_error(tmp_path: Path) -> None:
    from serve_testutil import free_port

    config = write_config(tmp_path, target_block("http", free_port(), connect_timeout_s=0.5))
    code, result, _ = run_connect(config, KEY)
    assert code == 3 and result["ok"] is False
    assert any("not ready within connect_timeout_s" in e for e in result["errors"]), result


@pytest.mark.parametrize("kind", KINDS)
def test_server_killed_mid_session_holds_retries_then_safe_stops(tmp_path: Path, kind: str) -> None:
    server = ServeProcess("builtin:demo")
    target = target_block(kind, server.port, retry_for_ms=400, retry_backoff_ms=20)
    config = write_config(tmp_path, target, max_steps=0, duration_s=60)
    session = subprocess.Popen(
        connect_cmd(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(), cwd=REPO,
    )
    try:
        steps_file = tmp_path / "rec" / "jsonl" / "steps.jsonl"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the loop is well under way
            if steps_file.exists() and steps_file.read_text().count('"type":"chunk"') >= 2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("session never got going")
        server.kill()
        out, err = session.communicate(timeout=40)
    finally:
        if session.poll() is None:
            session.kill()
            session.communicate()
        server.stop()
    result = result_of(out, err)
    assert session.returncode == 1, (result, err)
    assert result["ok"] is False and result["safeStops"] == 1
    assert any("retry_for_ms=400" in e for e in result["errors"]), result["errors"]
    records = recorded(tmp_path)  # the recording is complete and parses line by line
    assert records[0]["type"] == "header" and records[-1]["type"] == "end"
    steps = [r for r in records if r["type"] == "step"]
    # The tick that hit the incident counts as a step but records nothing.
    assert result["steps"] - 1 <= len(steps) <= result["steps"] and len(steps) > 0
    assert records[-1]["counts"]["step"] == len(steps)

"""A server that answers with 10x ``max_response_mb`` mid-session: the runner's memory stays
bounded (measured against a clean run of the same session, same machine, same run), and the
session ends in one safe stop naming the cause."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, subprocess_env
from test_openpi_sessions import PlainPolicyServer
from test_remote_sessions import result_of

pytestmark = pytest.mark.timeout(180)
CAP_MB = 32


def connect_measured(config: Path) -> tuple[int, dict[str, Any], str, int]:
    """``reflex connect --json`` as a subprocess: (exit code, result, stderr, peak RSS in bytes)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(), cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    out = proc.stdout.read()
    reader.join(60)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the test process's
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, result_of(out, err[0]), err[0], int(usage.ru_maxrss) * 1024


def session(tmp_path: Path, url: str, name: str) -> Path:
    target = {
        "kind": "http", "url": url, "health_path": "/", "connect_timeout_s": 5.0, "timeout_s": 30.0,
        "max_response_mb": CAP_MB,
        "mapping": {"images": {"top": "image"}, "image_encoding": "png", "actions_path": "result.actions",
                    "chunk_length": 20, "action_dt_s": 0.02},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "mode": "dry_run", "control_rate_hz": 50, "max_steps": 0, "duration_s": 30, "task": "wave",
        "target": target, "hardware": {"kind": "sim"}, "cameras": {"top": {"kind": "sim"}},
        "safety": {"infer_timeout_s": 60.0},
        "record": {"formats": ["jsonl"], "dir": str(tmp_path / name)},
    }))
    return path


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_reply_of_ten_times_the_cap_is_one_safe_stop_with_bounded_memory(tmp_path: Path, chunked: bool) -> None:
    cap = CAP_MB << 20
    with PlainPolicyServer() as clean:
        clean_config = session(tmp_path, clean.url, "clean")
        data = yaml.safe_load(clean_config.read_text())
        data["duration_s"] = 1.0
        clean_config.write_text(yaml.safe_dump(data))
        code, result, stderr, baseline_rss = connect_measured(clean_config)
    assert code == 0 and result["ok"] is True, (result, stderr)

    with PlainPolicyServer(flood_bytes=10 * cap, flood_chunked=chunked, flood_after=3) as flood:
        code, result, stderr, flood_rss = connect_measured(session(tmp_path, flood.url, "flood"))
        sent = flood.flood_sent
    assert code == 1 and result["ok"] is False, (result, stderr)
    assert result["safeStops"] == 1
    assert any("over max_response_mb" in e for e in result["errors"]), result["errors"]
    # Bounded: at most the cap (read in pieces, never joined) above a clean run; a reader without
    # the cap gets far past that before the session gives up (measured: +130 MiB at 32 MiB cap).
    print(f"peak RSS: clean {baseline_rss >> 20} MiB, flood {flood_rss >> 20} MiB; server got out {sent >> 20} MiB")
    assert flood_rss < baseline_rss + 2 * cap, (baseline_rss, flood_rss)
    assert sent < 10 * cap

"""Scenario suite, connectors: a real connector process misbehaving mid-session, recorded.

Each scenario asserts the exit code, exactly one safe stop (through the process only when it can
still be trusted), the message naming command, hook, step and problem, and that the recording
is finalised and readable up to the fault, with the safe stop in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, subprocess_env
from rss_testutil import peak_of
from test_subprocess_session import PERSISTENT_FAULTS, fault_step, session_file

from reflex.errors import EXIT_SESSION_FAILED
from reflex.runtime.session import run_session_file


def recorded(path: Path) -> Path:
    data = yaml.safe_load(path.read_text())
    data["record"] = {"formats": ["jsonl"]}
    data["safety"] = {"max_command_gap_ms": 1000}  # a loaded test machine is not the fault under test
    path.write_text(yaml.safe_dump(data))
    return path


def assert_readable_up_to_the_fault(rec: Path, result: dict[str, Any], fault_at: int) -> None:
    manifest = json.loads((rec / "recording.json").read_text())
    assert manifest["status"] in ("complete", "degraded")
    lines = [json.loads(x) for x in (rec / "jsonl" / "steps.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "end"
    steps = [x for x in lines if x["type"] == "step"]
    assert len(steps) == result["recording"]["writtenSteps"]["jsonl"] >= 1
    assert max(s["step"] for s in steps) <= fault_at
    kinds = [x.get("kind") for x in lines if x["type"] == "event"]
    assert kinds.count("safe_stop") == 1 and "enabled" in kinds


@pytest.mark.parametrize(
    ("hook", "fault", "problem"), PERSISTENT_FAULTS, ids=[f"{h}-{f}" for h, f, _ in PERSISTENT_FAULTS]
)
def test_connector_fault_is_one_safe_stop_and_a_readable_recording(
    tmp_path: Path, hook: str, fault: str, problem: str
) -> None:
    rec = tmp_path / "rec"
    path = recorded(session_file(tmp_path, "persistent", {"FAULT": fault, "FAULT_HOOK": hook}))
    result = run_session_file(path, record_dir=str(rec)).to_json()
    assert result["exitCode"] == EXIT_SESSION_FAILED and result["safeStops"] == 1, result["errors"]
    assert len(result["errors"]) == 1 and problem in result["errors"][0]
    step = fault_step(result["errors"][0], hook)  # FAULT_STEP, or the next step that applied
    markers = [json.loads(x) for x in (tmp_path / "marker").read_text().splitlines() if x.strip()]
    assert len(markers) == 1 and markers[0]["op"] == "safe_stop"  # safe_stop_command ran once
    assert_readable_up_to_the_fault(rec, result, step)


FLOOD = """
import runpy, sys, threading

def flood():
    chunk = b"x" * 65536  # no newline, ever
    while True:
        sys.stderr.buffer.write(chunk)

threading.Thread(target=flood, daemon=True).start()
sys.argv = ["robot.py", "--persistent"]
runpy.run_path("robot.py", run_name="__main__")
"""


def run_measuring_peak(path: Path) -> tuple[int, dict[str, Any], int]:
    """``reflex connect`` as a child; its peak RSS is read from /proc while it runs."""
    proc = subprocess.Popen([sys.executable, "-m", "reflex", "connect", "--config", str(path), "--json",
                             "--no-record"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), cwd=REPO)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, peak_of(proc.pid))
        except (OSError, RuntimeError):  # exited between poll and read
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == result["exitCode"], err[-2000:]
    return proc.returncode, result, peak


def test_connector_stderr_flood_in_a_session_keeps_the_runner_flat(tmp_path: Path) -> None:
    """The measured case: 3 GB in 9 s. The same session with and without a connector that
    floods stderr endlessly with no newline: the runner's peak RSS differs by a bounded amount."""
    quiet_dir, flood_dir = tmp_path / "quiet", tmp_path / "flood"
    peaks = []
    for directory, flood in ((quiet_dir, False), (flood_dir, True)):
        directory.mkdir()
        path = session_file(directory, "persistent", {})
        data = yaml.safe_load(path.read_text())
        data["max_steps"] = 150
        data["mode"] = "dry_run"  # memory is the point here, not motion: no stall check on a loaded machine
        if flood:
            (directory / "flood.py").write_text(FLOOD)
            data["hardware"]["config"]["command"] = [sys.executable, "-S", "flood.py"]
        path.write_text(yaml.safe_dump(data))
        code, result, peak = run_measuring_peak(path)
        assert code == 0 and result["steps"] == 150, result["errors"]
        peaks.append(peak)
    growth_mib = (peaks[1] - peaks[0]) / 1024
    assert growth_mib < 32, f"flooding connector: runner peak {peaks[1] / 1024:.0f} MiB vs {peaks[0] / 1024:.0f}"
